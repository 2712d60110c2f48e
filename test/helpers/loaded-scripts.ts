// Preloaded into a gateway process by a test (`node --import loaded-scripts.js main.js serve`):
// on SIGUSR2 it writes the URL of every script V8 has compiled in this process, node's own and
// every module of the gateway and its packages, ESM and CommonJS alike, to
// $LOADED_SCRIPTS_OUT. The inspector's Debugger domain reports each already-loaded script
// when it is enabled, so nothing has to be hooked before the modules load.
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'

const out = process.env.LOADED_SCRIPTS_OUT

if (out !== undefined) {
  process.on('SIGUSR2', () => {
    const urls: string[] = []
    const session = new Session()
    session.connect()
    session.on('Debugger.scriptParsed', (m) => {
      if (m.params.url) urls.push(m.params.url)
    })
    // Same-thread sessions answer synchronously: every scriptParsed has arrived after this.
    session.post('Debugger.enable')
    session.post('Debugger.disable')
    session.disconnect()
    writeFileSync(out, JSON.stringify(urls))
  })
}
