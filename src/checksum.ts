/**
 * The 64-bit checksum (xxh3-64) the library uses for artifacts and records,
 * exposed so engines can checksum data they write themselves.
 *
 * @module
 */
import { native } from './native'

/** xxh3-64 of `data`, the same function `writeArtifact` uses. */
export function checksum64(data: Uint8Array | string): bigint {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
  if (!(bytes instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array, a Buffer or a string')
  return BigInt(native.checksum64(bytes))
}
