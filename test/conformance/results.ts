// Reads what a conformance suite run wrote (`<dir>/server-<scenario>-<timestamp>/checks.json`)
// and its printed summary, into per-scenario tallies a test can report.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

/** One scenario's checks by outcome; INFO and SKIPPED checks count in neither. */
export interface Tally {
  scenario: string
  passed: number
  failed: number
  warnings: number
  /** Ids of its FAILURE and WARNING checks, as a baseline entry would name them. */
  failing: string[]
  warned: string[]
}

interface Check {
  id: string
  status: 'SUCCESS' | 'FAILURE' | 'WARNING' | 'INFO' | 'SKIPPED'
}

/** Per-scenario tallies of a results folder, in scenario name order. */
export function tallies(dir: string): Tally[] {
  const out: Tally[] = []
  for (const entry of readdirSync(dir).sort()) {
    const scenario = entry.replace(/^server-/, '').replace(/-\d{4}-\d\d-\d\dT[\d-]+Z$/, '')
    const checks = JSON.parse(readFileSync(join(dir, entry, 'checks.json'), 'utf8')) as Check[]
    const ids = (status: Check['status']) =>
      checks.filter((c) => c.status === status).map((c) => c.id)
    out.push({
      scenario,
      passed: ids('SUCCESS').length,
      failed: ids('FAILURE').length,
      warnings: ids('WARNING').length,
      failing: [...new Set(ids('FAILURE'))],
      warned: [...new Set(ids('WARNING'))],
    })
  }
  return out
}

/**
 * Server scenarios a requirement set runs but never scores, with the reason it gives
 * (`extension`, `pending`, `added-after-release`), from `conformance list --requirements`.
 */
export function notScored(listing: string): Map<string, string> {
  const found = new Map<string, string>()
  const at = listing.indexOf('never scored')
  if (at < 0) return found
  let reason = ''
  for (const line of listing.slice(at).split('\n')) {
    const heading = /^ {2}(\S+) \(\d+\):$/.exec(line)
    if (heading) reason = heading[1]!
    const entry = /^ {4}- (\S+) \[server\]$/.exec(line)
    if (entry) found.set(entry[1]!, reason)
  }
  return found
}

/** The summary the CLI prints from `=== SUMMARY ===` on, without colour codes. */
export function summary(stdout: string): string[] {
  const at = stdout.indexOf('=== SUMMARY ===')
  const plain = (at < 0 ? stdout.slice(-4000) : stdout.slice(at)).replace(/\x1b\[[0-9;]*m/g, '')
  return plain.split('\n').filter((l) => l.trim() !== '')
}
