// Policy cost per message: a decision for a gated call, and the filtering of a tools/list
// result, against a policy of 100 rules (the yardstick: under 50 µs per message).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Principal } from '../../gateway/auth/principal.js'
import { decide } from '../../gateway/policy/evaluate.js'
import { filterListResult } from '../../gateway/policy/filter.js'
import { loadPolicy } from '../../gateway/policy/load.js'

export interface PolicyBenchResult {
  rules: number
  /** One tools/call decision (rule found near the end of the list), in µs. */
  decideUs: number
  /** Filtering a tools/list result of `listSize` tools, in µs. */
  filterUs: number
  listSize: number
}

/** Measures with a fresh 100-rule policy; the principal is a new object per message, as per request. */
export function benchPolicy(iterations = 20_000): PolicyBenchResult {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-bench-policy-'))
  try {
    const rules: string[] = []
    for (let i = 0; i < 90; i++) rules.push(`      tool_${i}: ["mcp:read"]`)
    for (let i = 0; i < 9; i++)
      rules.push(
        `      "group${i}_*":\n        scopes: ["mcp:write"]\n        when: { client_id: [ci-${i}] }`,
      )
    rules.push('      "*": deny')
    writeFileSync(
      join(dir, 'p.yaml'),
      `roles:\n  user: ["mcp:read"]\n  dev: ["mcp:read", "mcp:write"]\nservers:\n  s:\n    access: ["mcp:read"]\n    tools:\n${rules.join('\n')}\n`,
    )
    const policy = loadPolicy(join(dir, 'p.yaml'))
    const principal = (): Principal => ({
      iss: 'i',
      sub: 'u',
      clientId: 'c',
      scopes: new Set(),
      hasScopeClaim: false,
      roles: new Set(['user']),
      exp: undefined,
      claims: {},
    })
    const listSize = 100
    const result = {
      tools: Array.from({ length: listSize }, (_, i) => ({
        name: `tool_${i}`,
        inputSchema: { type: 'object' },
      })),
      nextCursor: 'x',
    }

    const time = (fn: () => void) => {
      for (let i = 0; i < 2_000; i++) fn()
      const t0 = process.hrtime.bigint()
      for (let i = 0; i < iterations; i++) fn()
      return Number(process.hrtime.bigint() - t0) / 1e3 / iterations
    }
    const decideUs = time(() => decide(policy, principal(), 's', 'tools', 'tool_89'))
    const filterUs = time(() => filterListResult(policy, 's', 'tools/list', result, principal()))
    return { rules: 100, decideUs, filterUs, listSize }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
