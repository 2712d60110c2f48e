// Debian's Chromium driven by puppeteer-core, for every page a person sees. puppeteer-core
// downloads no browser; .ci/run installs /usr/bin/chromium. Outside CI a machine without it
// skips the browser tests; in CI (CI=true) a missing browser is a failure, never a skip.
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import puppeteer, { type Browser } from 'puppeteer-core'

export const CHROMIUM = '/usr/bin/chromium'

/** The `skip` option of a browser suite: a reason outside CI when Chromium is absent, else false. */
export const NO_BROWSER: string | false =
  !existsSync(CHROMIUM) && process.env.CI !== 'true' && `no ${CHROMIUM}`

/**
 * Launches headless Chromium with a fresh profile and the flags this closed network needs
 * (no background networking: its connections would be refused, many at a time); `o.args` adds
 * flags, `o.acceptInsecureCerts` takes a test CA's certificates.
 */
export async function launchBrowser(
  o: { args?: string[]; acceptInsecureCerts?: boolean } = {},
): Promise<{ browser: Browser; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'mcp-edge-chromium-'))
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    acceptInsecureCerts: o.acceptInsecureCerts ?? false,
    args: [
      ...(o.args ?? []),
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
      `--user-data-dir=${profile}`,
    ],
  })
  return {
    browser,
    async close() {
      await browser.close().catch(() => {})
      rmSync(profile, { recursive: true, force: true })
    },
  }
}

/**
 * A web server of another origin on 127.0.0.1 (an attacker's page, a client's redirect URI,
 * another local app) answering every request with `handler`; `close` ends it and its connections.
 */
export async function startSite(
  handler: http.RequestListener,
): Promise<{ port: number; close(): Promise<void> }> {
  const site = http.createServer(handler)
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve))
  return {
    port: (site.address() as AddressInfo).port,
    close() {
      site.closeAllConnections()
      return new Promise<void>((resolve) => site.close(() => resolve()))
    },
  }
}
