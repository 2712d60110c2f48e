// Manual check, not part of npm test (needs Debian's chromium and Node >= 22 for the Inspector):
//   apt-get install -y chromium && npm install --no-save playwright-core
//   npm start &    # gateway + dev IdP on 8080/8090
//   DANGEROUSLY_OMIT_AUTH=true MCP_AUTO_OPEN_ENABLED=false \
//     npx -y -p node@24 -p @modelcontextprotocol/inspector@0.17.5 -- mcp-inspector &
//   node test/manual/inspector-oauth.mjs                 # Inspector's proxy connection
//   DIRECT=1 node test/manual/inspector-oauth.mjs        # the browser connects directly
// Drives MCP Inspector in headless Chromium: Connect → 401 → metadata discovery → dynamic
// registration → authorize with PKCE at the dev IdP → token → tools listed. Screenshots in /tmp.
import { chromium } from 'playwright-core'
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] })
const page = await browser.newPage()
page.on('console', (m) => { if (m.type() === 'error') console.log('console:', m.text().slice(0, 200)) })
const url = 'http://localhost:6274/?transport=streamable-http&serverUrl=' + encodeURIComponent(process.argv[2] ?? 'http://127.0.0.1:8080/mcp/echo')
await page.goto(url)
await page.waitForTimeout(1500)
await page.screenshot({ path: '/tmp/inspector-1-start.png' })
if (process.env.DIRECT) {
  await page.getByRole('combobox').filter({ hasText: /via proxy/i }).click()
  await page.getByRole('option', { name: /direct/i }).click()
}
await page.getByRole('button', { name: /^connect$/i }).click()
await page.waitForTimeout(8000)
console.log('after connect url:', page.url())
await page.screenshot({ path: '/tmp/inspector-2-after-connect.png' })
const tools = page.getByRole('tab', { name: /tools/i })
if (await tools.count()) { await tools.first().click(); await page.waitForTimeout(500) }
const list = page.getByRole('button', { name: /list tools/i })
if (await list.count()) { await list.first().click(); await page.waitForTimeout(2000) }
await page.screenshot({ path: '/tmp/inspector-3-tools.png', fullPage: true })
const body = await page.locator('body').innerText()
const ok = /\becho\b/.test(body) && /connected/i.test(body)
console.log(ok ? 'OK: connected through OAuth, tools listed' : 'FAILED: see /tmp/inspector-*.png')
process.exitCode = ok ? 0 : 1
await browser.close()
