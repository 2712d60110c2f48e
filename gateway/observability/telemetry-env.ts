import { ConfigError, type ConfigProblem } from '../config/errors.js'

/** How spans or metrics leave the gateway. */
export type TelemetryExporter = { kind: 'otlp'; protocol: OtlpProtocol } | { kind: 'console' }

/** The OTLP encodings the official JS exporters the gateway ships speak over HTTP. */
export type OtlpProtocol = 'http/protobuf' | 'http/json'

/** What the standard `OTEL_*` variables turn on; undefined fields are off. */
export interface TelemetrySettings {
  traces: TelemetryExporter | undefined
  metrics: TelemetryExporter | undefined
  /** Spans carry who called (`user.id` = the token's `sub`, `client.address`): off unless asked. */
  userAttributes: boolean
}

/** The variable that puts the caller's identity on spans (privacy: off by default). */
export const USER_ATTRIBUTES_VARIABLE = 'MCP_EDGE_OTEL_USER_ATTRIBUTES'

const PROTOCOLS: readonly string[] = ['http/protobuf', 'http/json']

/**
 * Reads the OpenTelemetry SDK environment variables (OTel specification, "Environment Variable
 * Specification" and "OTLP Exporter Configuration") into what to start. Telemetry is off unless
 * an exporter is named (`OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER`) or an OTLP endpoint is
 * set (`OTEL_EXPORTER_OTLP_ENDPOINT`, or the signal's own `…_TRACES_ENDPOINT` /
 * `…_METRICS_ENDPOINT`); `OTEL_SDK_DISABLED=true` wins over all of them. Pure: the caller passes
 * the environment. Returns undefined when nothing is on, so nothing of the SDK is loaded.
 * @throws ConfigError listing every variable the gateway cannot honour (an exporter or protocol
 *   it does not ship, such as `grpc` or `zipkin`), so a typo fails at start-up, not silently.
 */
export function telemetrySettings(
  env: Readonly<Record<string, string | undefined>>,
): TelemetrySettings | undefined {
  const problems: ConfigProblem[] = []
  // Disabled wins over everything, even over variables that would not load.
  if (flag(env, 'OTEL_SDK_DISABLED', problems)) return undefined
  const userAttributes = flag(env, USER_ATTRIBUTES_VARIABLE, problems)
  const traces = signal(env, 'TRACES', problems)
  const metrics = signal(env, 'METRICS', problems)
  if (problems.length > 0) throw new ConfigError(problems)
  if (traces === undefined && metrics === undefined) return undefined
  return { traces, metrics, userAttributes }
}

/** One signal's exporter: named by `OTEL_<SIGNAL>_EXPORTER`, or implied by an OTLP endpoint. */
function signal(
  env: Readonly<Record<string, string | undefined>>,
  name: 'TRACES' | 'METRICS',
  problems: ConfigProblem[],
): TelemetryExporter | undefined {
  const variable = `OTEL_${name}_EXPORTER`
  const named = list(env[variable])
  const endpoint =
    set(env.OTEL_EXPORTER_OTLP_ENDPOINT) || set(env[`OTEL_EXPORTER_OTLP_${name}_ENDPOINT`])
  // The specification's default exporter is otlp; here it also needs somewhere to send to, so
  // that a bare environment keeps telemetry off.
  const wanted = named ?? (endpoint ? ['otlp'] : ['none'])
  const unknown = wanted.filter((e) => e !== 'otlp' && e !== 'console' && e !== 'none')
  if (unknown.length > 0) {
    problems.push({
      file: 'environment',
      path: variable,
      message: `${unknown.join(', ')}: not supported (otlp, console or none)`,
    })
    return undefined
  }
  if (wanted.includes('otlp')) {
    // The signal's own variable, else the shared one: a problem names the one that was set
    // (once, for the shared one both signals read).
    const own = `OTEL_EXPORTER_OTLP_${name}_PROTOCOL`
    const from = env[own] !== undefined ? own : 'OTEL_EXPORTER_OTLP_PROTOCOL'
    const protocol = (env[from] ?? 'http/protobuf').trim()
    if (!PROTOCOLS.includes(protocol)) {
      if (!problems.some((p) => p.path === from))
        problems.push({
          file: 'environment',
          path: from,
          message: `${protocol}: not supported (http/protobuf or http/json)`,
        })
      return undefined
    }
    return { kind: 'otlp', protocol: protocol as OtlpProtocol }
  }
  return wanted.includes('console') ? { kind: 'console' } : undefined
}

/** A comma-separated list, lower-cased; undefined when the variable is unset or blank. */
function list(value: string | undefined): string[] | undefined {
  if (!set(value)) return undefined
  return value!
    .split(',')
    .map((v) => v.trim().toLowerCase())
    .filter((v) => v !== '')
}

function set(value: string | undefined): boolean {
  return value !== undefined && value.trim() !== ''
}

/** A boolean variable: `true` or `false`, any case; unset or blank is false. */
function flag(
  env: Readonly<Record<string, string | undefined>>,
  name: string,
  problems: ConfigProblem[],
): boolean {
  const value = env[name]?.trim().toLowerCase()
  if (value === undefined || value === '' || value === 'false') return false
  if (value === 'true') return true
  problems.push({ file: 'environment', path: name, message: `${value}: true or false` })
  return false
}
