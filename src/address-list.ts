// A list of client addresses and CIDR ranges (IPv4 and IPv6), for adminAllow and trustProxy. IPv4 clients of a
// dual-stack socket (::ffff:a.b.c.d) match their IPv4 entries.
import {BlockList, isIP} from 'node:net'

export interface AddressList {
  has(address: string | undefined): boolean
}

// Builds the list; throws a TypeError naming `option` and the bad entry. `loopback` adds 127.0.0.0/8 and ::1.
export function createAddressList(entries: readonly string[], option: string, loopback = false): AddressList {
  const list = new BlockList()
  if (loopback) {
    list.addSubnet('127.0.0.0', 8, 'ipv4')
    list.addAddress('::1', 'ipv6')
  }
  for (const entry of entries) {
    const [address = '', bits, extra] = entry.split('/')
    const family = isIP(address)
    const maxBits = family === 4 ? 32 : 128
    if (family === 0 || extra !== undefined || (bits !== undefined && (!/^\d+$/.test(bits) || Number(bits) > maxBits))) {
      throw new TypeError(`Expected the \`${option}\` option to hold addresses or CIDR ranges like 10.0.0.0/8, got \`${entry}\``)
    }
    const type = family === 4 ? 'ipv4' : 'ipv6'
    if (bits === undefined) list.addAddress(address, type)
    else list.addSubnet(address, Number(bits), type)
  }
  return {
    has(remote) {
      if (remote === undefined) return false
      const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remote)
      const address = mapped ? mapped[1]! : remote
      const family = isIP(address)
      return family !== 0 && list.check(address, family === 6 ? 'ipv6' : 'ipv4')
    },
  }
}
