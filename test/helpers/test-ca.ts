import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import type { LookupFunction } from 'node:net'
import { join } from 'node:path'
import { rootCertificates } from 'node:tls'
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
