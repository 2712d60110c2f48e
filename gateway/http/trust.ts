import { BlockList, isIP } from 'node:net'

/** Decides whether a connection's peer is a proxy whose forwarding headers are believed. */
export type TrustedPeer = (address: string | undefined) => boolean

/**
 * `trustProxy: true`: every peer is a proxy, so no address in X-Forwarded-For can tell a proxy
 * from a client: only the entry the peer itself wrote (the last) is believed.
 */
export const TRUST_ANY_PEER: TrustedPeer = () => true

/**
 * Compiles `trustProxy`: `true` trusts every peer, `false` none, a list trusts those addresses
 * and CIDR ranges (IPv4-mapped IPv6 peers are compared as IPv4).
 */
export function trustedPeer(setting: boolean | readonly string[]): TrustedPeer {
  if (setting === true) return TRUST_ANY_PEER
  if (setting === false) return () => false
  const list = new BlockList()
  for (const entry of setting) {
    const [address, bits] = entry.split('/')
    const family = isIP(address!) === 6 ? 'ipv6' : 'ipv4'
    if (bits === undefined) list.addAddress(address!, family)
    else list.addSubnet(address!, Number(bits), family)
  }
  return (peer) => {
    if (peer === undefined) return false
    const address = peer.startsWith('::ffff:') ? peer.slice(7) : peer
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4'
    return isIP(address) !== 0 && list.check(address, family)
  }
}
