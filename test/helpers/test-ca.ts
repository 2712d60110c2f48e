import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { connect, type AddressInfo, type LookupFunction } from 'node:net'
import { join } from 'node:path'
import { createServer, rootCertificates } from 'node:tls'
import { Agent } from 'undici'

/** A throwaway certificate authority and one server certificate it signed. */
export interface TestCa {
  /** The CA certificate (PEM): what a client trusts. */
  ca: string
  /** The server's certificate (PEM) for its names (default 127.0.0.1 and localhost). */
  cert: string
  /** The server's private key (PEM). */
  key: string
}

/**
 * Makes a CA and a server certificate with openssl (subjectAltName `names`, by default
 * IP:127.0.0.1 and DNS:localhost), in a temporary folder removed before returning.
 */
export function makeTestCa(names: string[] = ['IP:127.0.0.1', 'DNS:localhost']): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-ca-'))
  const at = (name: string) => join(dir, name)
  const openssl = (...args: string[]) =>
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  try {
    openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      at('ca.key'),
      '-out',
      at('ca.pem'),
      '-days',
      '2',
      '-subj',
      '/CN=mcp-edge test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign',
    )
    openssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      at('server.key'),
      '-out',
      at('server.csr'),
      '-subj',
      '/CN=localhost',
    )
    writeFileSync(at('ext.cnf'), `subjectAltName=${names.join(',')}\nextendedKeyUsage=serverAuth\n`)
    openssl(
      'x509',
      '-req',
      '-in',
      at('server.csr'),
      '-CA',
      at('ca.pem'),
      '-CAkey',
      at('ca.key'),
      '-CAcreateserial',
      '-out',
      at('server.pem'),
      '-days',
      '2',
      '-extfile',
      at('ext.cnf'),
    )
    return {
      ca: readFileSync(at('ca.pem'), 'utf8'),
      cert: readFileSync(at('server.pem'), 'utf8'),
      key: readFileSync(at('server.key'), 'utf8'),
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * An undici Agent for a test's browser or client: trusts `ca` besides the system's roots and
 * connects every host name to 127.0.0.1 (names that only a proxy or connectTo would resolve).
 */
export function loopbackAgent(ca: string): Agent {
  const lookup: LookupFunction = (_name, o, cb) =>
    o.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4)
  return new Agent({ connect: { ca: [...rootCertificates, ca], lookup } })
}

/** A TLS terminator in front of a plain-http server, as nginx is in front of the gateway. */
export interface TlsFront {
  /** Its https origin (`https://127.0.0.1:<port>`). */
  url: string
  close(): Promise<void>
}

/**
 * Listens on 127.0.0.1 with `ca`'s server certificate and relays each connection's bytes
 * (Host, headers and body as sent) to 127.0.0.1:`port`; its URL names `name` (one of the
 * certificate's, resolved to 127.0.0.1 by the client: loopbackAgent, a browser's resolver rules).
 */
export async function startTlsFront(
  ca: TestCa,
  port: number,
  name = '127.0.0.1',
): Promise<TlsFront> {
  const open = new Set<{ destroy(): void }>()
  const server = createServer({ key: ca.key, cert: ca.cert }, (tls) => {
    const plain = connect(port, '127.0.0.1')
    for (const [a, b] of [
      [tls, plain],
      [plain, tls],
    ] as const) {
      open.add(a)
      a.on('error', () => b.destroy())
      a.on('close', () => (open.delete(a), b.destroy()))
    }
    tls.pipe(plain).pipe(tls)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `https://${name}:${(server.address() as AddressInfo).port}`,
    close: async () => {
      for (const s of open) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
