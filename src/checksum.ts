/**
 * The 64-bit checksum (xxh3-64) the library uses for artifacts and records,
 * exposed so engines can checksum data they write themselves.
 *
 * @module
 */
import * as path from 'node:path'

import { translateNativeError } from './errors'
import { native } from './native'

/** xxh3-64 of `data`, the same function `writeArtifact` uses. */
export function checksum64(data: Uint8Array | string): bigint {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
  if (!(bytes instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array, a Buffer or a string')
  return BigInt(native.checksum64(bytes))
}

/**
 * The xxh3-64 checksum and size of a file of any size, read in blocks (for
 * artifacts an engine writes itself, e.g. a large Parquet file streamed to
 * disk, before it appends their record).
 */
export function checksumFile(file: string): { checksum: bigint; size: number } {
  if (typeof file !== 'string' || file.length === 0) throw new TypeError('file must be a non-empty string')
  try {
    const r = native.checksumFile(path.resolve(file))
    return { checksum: BigInt(r.checksum), size: r.size }
  } catch (e) {
    throw translateNativeError(e)
  }
}
