/**
 * Whether a URL's host name never leaves the machine (`localhost`, 127.0.0.0/8, `[::1]`): the
 * one place plain http carries nothing over a network, as OAuth 2.1 (§1.5) and MCP allow.
 */
export function loopbackUrl(url: string): boolean {
  const u = URL.parse(url)
  if (u === null) return false
  const host = u.hostname.replace(/^\[|\]$/g, '')
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}
