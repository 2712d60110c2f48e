#!/usr/bin/env node
// Fills nginx/mcp-edge.conf.template from the environment and NAME=value arguments (plain
// Node, no dependencies). Usage and every setting: nginx/README.md.
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { basename } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Settings with their defaults; `undefined` = required. */
export const DEFAULTS = {
  SERVER_NAME: undefined,
  TLS_CERT: undefined,
  TLS_KEY: undefined,
  REPLICAS: undefined,
  HOSTS: '',
  HOSTS_TLS_CERT: '',
  HOSTS_TLS_KEY: '',
  PUBLIC_URL: '',
  HTTP_PORT: '80',
  HTTPS_PORT: '443',
  LISTEN: '',
  HTTP2: 'auto',
  NGINX_VERSION: '',
  MAX_BODY: '1m',
  SSE_TIMEOUT: '3600s',
  WORKER_PROCESSES: 'auto',
  WORKER_CONNECTIONS: '4096',
  KEEPALIVE: '32',
  UPSTREAM_KEEPALIVE_TIMEOUT: '4s',
  FAIL_TIMEOUT: '10s',
  NGINX_USER: '',
  PID_FILE: '',
  TEMP_DIR: '',
  ERROR_LOG: '/var/log/nginx/error.log',
  ACCESS_LOG: '/var/log/nginx/access.log',
}

/** The gateway's replicaId syntax (gateway/config/schema.ts). */
const REPLICA_ID = /^[a-z0-9][a-z0-9-]{0,31}$/
/** Words a `map` reads as its own parameters, not as a key. */
const MAP_KEYWORDS = new Set(['default', 'hostnames', 'include', 'volatile'])
/** host:port, [v6]:port or unix:/path. */
const ADDRESS = /^[^:\s]+:\d{1,5}$|^\[[0-9a-fA-F:.]+\]:\d{1,5}$|^unix:\/\S+$/
/** Nothing that could end a directive or open a block or a variable. */
const SAFE = /^[^;{}'"$\\\s]+$/
/** The gateway's `hosts:` key syntax (gateway/config/schema.ts): a lowercase DNS name, no wildcard. */
const HOST_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/
/** Where HOSTS_TLS_CERT and HOSTS_TLS_KEY name each routed host (certbot: live/{host}/…). */
const HOST_SLOT = '{host}'
/** The template lines rendered once per site: the main names, then each group of HOSTS. */
const EACH_SITE = '${EACH_SITE}'
const END_EACH_SITE = '${END_EACH_SITE}'

/**
 * Renders the template. `values` are the settings (see DEFAULTS); returns the config text.
 * @throws Error naming every bad or missing setting
 */
export function render(template, values) {
  const defaults = Object.entries(DEFAULTS).filter(([, d]) => d !== undefined)
  const v = { ...Object.fromEntries(defaults), ...values }
  const problems = []
  const need = (name, test, what) => {
    if (v[name] === undefined || v[name] === '') problems.push(`${name}: required`)
    else if (!test(v[name])) problems.push(`${name}: ${what} (got ${JSON.stringify(v[name])})`)
  }
  const port = (s) => /^\d{1,5}$/.test(s) && +s >= 1 && +s <= 65535
  const safe = (s) => SAFE.test(s)
  need('SERVER_NAME', (s) => s.split(/\s+/).every(safe), 'host names separated by spaces')
  need('TLS_CERT', safe, 'a file path without spaces, quotes, ; { } or $')
  need('TLS_KEY', safe, 'a file path without spaces, quotes, ; { } or $')
  need('HTTP_PORT', port, 'a port number')
  need('HTTPS_PORT', port, 'a port number')
  need(
    'MAX_BODY',
    (s) => /^\d+[kKmM]?$/.test(s),
    'a size like 1m, 512k or 1048576 (as limits.maxBodyBytes)',
  )
  need('SSE_TIMEOUT', (s) => /^\d+(ms|s|m|h|d)?$/.test(s), 'an nginx time like 3600s or 1h')
  need('UPSTREAM_KEEPALIVE_TIMEOUT', (s) => /^\d+(ms|s|m)?$/.test(s), 'an nginx time like 4s')
  need('FAIL_TIMEOUT', (s) => /^\d+(ms|s|m)?$/.test(s), 'an nginx time like 10s')
  need('WORKER_PROCESSES', (s) => s === 'auto' || /^\d+$/.test(s), 'auto or a number')
  need('WORKER_CONNECTIONS', (s) => /^\d+$/.test(s), 'a number')
  need('KEEPALIVE', (s) => /^\d+$/.test(s), 'a number')
  need('HTTP2', (s) => ['auto', 'on', 'off'].includes(s), 'auto, on or off')
  for (const name of ['NGINX_USER', 'PID_FILE', 'TEMP_DIR', 'ERROR_LOG', 'ACCESS_LOG', 'LISTEN']) {
    if (v[name] !== '' && !v[name].split(/\s+/).every(safe)) {
      problems.push(`${name}: no quotes, ; { } or $ (got ${JSON.stringify(v[name])})`)
    }
  }

  const replicas = parseReplicas(v.REPLICAS ?? '', problems)
  const httpsPort = v.HTTPS_PORT
  const firstName = (v.SERVER_NAME ?? '').split(/\s+/)[0]
  const publicUrl =
    v.PUBLIC_URL || `https://${firstName}${httpsPort === '443' ? '' : `:${httpsPort}`}`
  let publicOrigin = ''
  let publicPort = ''
  if (v.PUBLIC_URL || firstName) {
    try {
      const url = new URL(publicUrl)
      if (url.protocol !== 'https:') problems.push(`PUBLIC_URL: must be https (got ${publicUrl})`)
      // The template's locations serve /mcp/ and /.well-known/ at the root.
      else if (url.pathname !== '/' || url.search || url.hash) {
        problems.push(`PUBLIC_URL: must be an origin, without a path (got ${publicUrl})`)
      }
      publicOrigin = url.origin
      publicPort = url.port
    } catch {
      problems.push(`PUBLIC_URL: not a URL (got ${JSON.stringify(publicUrl)})`)
    }
  }
  const hostGroups = parseHosts(v, problems)
  const lines = template.split('\n')
  const [begin, end] = [EACH_SITE, END_EACH_SITE].map((marker) =>
    lines.findIndex((l) => l.trim() === marker),
  )
  const sectioned = begin !== -1 && end > begin
  if (hostGroups.length > 0 && !sectioned) {
    problems.push(
      `HOSTS: the template has no ${EACH_SITE} … ${END_EACH_SITE} lines around its server blocks`,
    )
  }
  if (problems.length > 0)
    throw new Error(`cannot render the nginx config:\n  ${problems.join('\n  ')}`)

  // nginx 1.25.1 moved HTTP/2 from a listen parameter to the `http2` directive.
  const h2 = v.HTTP2 === 'off' ? 'off' : newHttp2Syntax(v.NGINX_VERSION) ? 'directive' : 'listen'
  const listen = (port, flags) => {
    const addresses = v.LISTEN === '' ? [port] : v.LISTEN.split(/\s+/).map((a) => `${a}:${port}`)
    return addresses.map((a) => `listen ${a}${flags};`).join('\n')
  }
  const filled = {
    ...v,
    // The main site: its marker line is left out, plain HTTP goes to the public URL.
    EACH_SITE: '',
    END_EACH_SITE: '',
    REDIRECT_ORIGIN: publicOrigin,
    MAX_BODY_BYTES: String(bytes(v.MAX_BODY)),
    HTTP_LISTEN: listen(v.HTTP_PORT, ''),
    HTTPS_LISTEN: listen(httpsPort, h2 === 'listen' ? ' ssl http2' : ' ssl'),
    HTTP2: h2 === 'directive' ? 'http2 on;' : '',
    REPLICA_MAP: replicas.map((r) => `${r.id} ${upstreamOf(r.id)};`).join('\n'),
    UPSTREAMS: upstreams(replicas, v),
  }
  if (!sectioned) return fill(lines, filled).join('\n')
  // Each group of routed hosts gets the main site's two server blocks again, with its own
  // names and certificate; its plain HTTP goes to the same name over https. `$host` is one
  // of the group's names: nginx picked the block because the request named one exactly.
  const sites = hostGroups.map((g) => ({
    ...filled,
    EACH_SITE: [
      "# Routed hosts (the gateways' hosts:): the two servers above again, with their own names",
      '# and certificate; plain HTTP goes to https on the same name, not to the public URL.',
    ].join('\n'),
    SERVER_NAME: g.names.join(' '),
    TLS_CERT: g.cert,
    TLS_KEY: g.key,
    REDIRECT_ORIGIN: `https://$host${publicPort ? `:${publicPort}` : ''}`,
  }))
  const section = lines.slice(begin, end + 1)
  return [
    ...fill(lines.slice(0, begin), filled),
    ...fill(section, filled),
    ...sites.flatMap((site) => ['', ...fill(section, site)]),
    ...fill(lines.slice(end + 1), filled),
  ].join('\n')
}

/**
 * Fills the placeholders of template lines; a line whose placeholder renders empty is left
 * out (an unset optional setting). A multi-line value keeps the placeholder's indentation.
 */
function fill(lines, filled) {
  const out = []
  for (const line of lines) {
    const indent = /^\s*/.exec(line)[0]
    let empty = false
    const text = line.replace(/\$\{([A-Z][A-Z0-9_]*)\}/g, (_, name) => {
      if (!(name in filled)) throw new Error(`the template names an unknown setting \${${name}}`)
      const value = filled[name]
      if (value === '') empty = true
      return value.split('\n').join(`\n${indent}`)
    })
    if (!empty) out.push(text)
  }
  return out
}

/**
 * HOSTS (names separated by spaces or commas) grouped by their certificate and key:
 * HOSTS_TLS_CERT/HOSTS_TLS_KEY with `{host}` replaced by each name, or TLS_CERT/TLS_KEY
 * (a certificate whose SANs, or wildcard, cover every name). One group per certificate.
 */
function parseHosts(v, problems) {
  const names = (v.HOSTS ?? '').split(/[\s,]+/).filter(Boolean)
  const [certSlot, keySlot] = [v.HOSTS_TLS_CERT ?? '', v.HOSTS_TLS_KEY ?? '']
  const both = certSlot !== '' && keySlot !== ''
  if ((certSlot !== '') !== (keySlot !== '')) {
    problems.push(
      'HOSTS_TLS_CERT, HOSTS_TLS_KEY: set both or neither (a certificate needs its own key)',
    )
  } else if (both && names.length === 0)
    problems.push('HOSTS_TLS_CERT, HOSTS_TLS_KEY: only with HOSTS')
  const main = new Set((v.SERVER_NAME ?? '').toLowerCase().split(/\s+/))
  const groups = new Map()
  const seen = new Set()
  for (const name of names) {
    if (!HOST_NAME.test(name)) {
      problems.push(
        `HOSTS: "${name}" is not a lowercase DNS name (as the gateways' hosts: keys, no wildcard)`,
      )
      continue
    }
    if (seen.has(name)) {
      problems.push(`HOSTS: "${name}" is listed twice`)
      continue
    }
    seen.add(name)
    // nginx would serve it from the first block naming it, the main one: its plain HTTP
    // would go to PUBLIC_URL, not to the host's own resource URL.
    if (main.has(name)) problems.push(`HOSTS: "${name}" is also in SERVER_NAME`)
    const [cert, key] = both
      ? [certSlot, keySlot].map((p) => p.split(HOST_SLOT).join(name))
      : [v.TLS_CERT, v.TLS_KEY]
    const bad = [
      ['HOSTS_TLS_CERT', cert],
      ['HOSTS_TLS_KEY', key],
    ].filter(([, p]) => both && !SAFE.test(p))
    for (const [setting, p] of bad) {
      const what = `a file path without spaces, quotes, ; { } or $ besides ${HOST_SLOT}`
      problems.push(`${setting}: ${what} (got ${JSON.stringify(p)} for ${name})`)
    }
    if (bad.length > 0) continue
    const id = `${cert}\n${key}`
    if (!groups.has(id)) groups.set(id, { names: [], cert, key })
    groups.get(id).names.push(name)
  }
  return [...groups.values()]
}

/** `id=host:port` entries separated by spaces or commas, ids as the gateways' replicaId. */
function parseReplicas(text, problems) {
  const replicas = []
  for (const entry of text.split(/[\s,]+/).filter(Boolean)) {
    const m = /^([^=]+)=([^=]+)$/.exec(entry)
    if (!m) {
      problems.push(`REPLICAS: "${entry}" is not id=host:port`)
      continue
    }
    const [, id, address] = m
    if (!REPLICA_ID.test(id) || MAP_KEYWORDS.has(id)) {
      const reserved = [...MAP_KEYWORDS].join('/')
      problems.push(
        `REPLICAS: "${id}" is not a replicaId (a-z, 0-9 and -, at most 32; not ${reserved})`,
      )
    } else if (!ADDRESS.test(address) || !SAFE.test(address)) {
      problems.push(`REPLICAS: "${address}" is not host:port`)
    } else if (replicas.some((r) => r.id === id)) {
      problems.push(`REPLICAS: "${id}" is listed twice`)
    } else replicas.push({ id, address })
  }
  if (replicas.length === 0 && !problems.some((p) => p.startsWith('REPLICAS'))) {
    problems.push('REPLICAS: required (e.g. "a=10.0.0.11:8080 b=10.0.0.12:8080")')
  }
  return replicas
}

function upstreamOf(id) {
  return `mcp_edge_replica_${id}`
}

/**
 * The pool of every replica, the same pool hashed by bearer token (sessionless requests),
 * then one upstream per replica with the others as backup.
 */
function upstreams(replicas, v) {
  const primary = (r) => `server ${r.address} max_fails=1 fail_timeout=${v.FAIL_TIMEOUT};`
  const block = (name, body, keepalive) =>
    [
      `upstream ${name} {`,
      `    zone ${name} 64k;`,
      ...body.map((l) => `    ${l}`),
      `    keepalive ${keepalive};`,
      // Below the gateway's idle keep-alive (Node's 5 s), so nginx never reuses a
      // connection the replica is closing.
      `    keepalive_timeout ${v.UPSTREAM_KEEPALIVE_TIMEOUT};`,
      '}',
    ].join('\n')
  const pool = block('mcp_edge_pool', ['least_conn;', ...replicas.map(primary)], v.KEEPALIVE)
  // nginx refuses `backup` servers with `hash`: a failed replica is skipped by next-upstream.
  const principal = block(
    'mcp_edge_principal',
    ['hash $http_authorization consistent;', ...replicas.map(primary)],
    v.KEEPALIVE,
  )
  const own = replicas.map((r) => {
    const backups = replicas.filter((o) => o !== r).map((o) => `server ${o.address} backup;`)
    return block(
      upstreamOf(r.id),
      [primary(r), ...backups],
      Math.max(1, Math.ceil(+v.KEEPALIVE / 2)),
    )
  })
  return [pool, principal, ...own].join('\n')
}

/** True for nginx ≥ 1.25.1, or when the version is unknown (assume a current nginx). */
function newHttp2Syntax(given) {
  let version = given
  if (!version) {
    // `nginx -v` prints to stderr; no nginx on PATH leaves the version unknown.
    const run = spawnSync('nginx', ['-v'], { encoding: 'utf8' })
    version = `${run.stdout ?? ''}${run.stderr ?? ''}`
  }
  const m = /(\d+)\.(\d+)\.(\d+)/.exec(version ?? '')
  if (!m) return true
  const [a, b, c] = m.slice(1).map(Number)
  return a > 1 || (a === 1 && (b > 25 || (b === 25 && c >= 1)))
}

/** nginx size syntax → bytes. */
function bytes(size) {
  const unit = { k: 1024, m: 1024 * 1024 }[size.slice(-1).toLowerCase()] ?? 1
  return parseInt(size, 10) * unit
}

function main(argv) {
  const values = {}
  for (const name of Object.keys(DEFAULTS)) {
    if (process.env[name] !== undefined) values[name] = process.env[name]
  }
  let template = fileURLToPath(new URL('./mcp-edge.conf.template', import.meta.url))
  let out
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--template') template = argv[++i]
    else if (arg === '--out' || arg === '-o') out = argv[++i]
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write('usage: render.mjs [--template FILE] [--out FILE] [NAME=value ...]\n')
      process.stdout.write(
        `settings (environment or NAME=value): ${Object.keys(DEFAULTS).join(', ')}\n`,
      )
      return 0
    } else if (/^[A-Z][A-Z0-9_]*=/.test(arg)) {
      const [name, ...rest] = arg.split('=')
      if (!(name in DEFAULTS)) throw new Error(`unknown setting ${name}`)
      values[name] = rest.join('=')
    } else throw new Error(`unexpected argument ${arg}`)
  }
  const header = `# Generated by nginx/render.mjs from ${basename(template)}: edit that, not this.\n`
  const text = header + render(readFileSync(template, 'utf8'), values)
  if (out) writeFileSync(out, text)
  else process.stdout.write(text)
  return 0
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    process.exitCode = main(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`render.mjs: ${err.message}\n`)
    process.exitCode = 2
  }
}
