// `prepare`: npm runs it in the repository on `npm install`/`npm ci` (where it
// does nothing: `npm run build` or `npm test` build the addon), and in a
// package being installed as a dependency from a git URL or a folder. Such a
// checkout has no native addon and no `dist/`, and npm would install it as an
// empty shell that fails at its first `require`; it stops the install instead,
// saying how to get a working package.
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const asDependency = Boolean(process.env.npm_package_resolved)
const built = existsSync(join(root, 'dist', 'index.js')) && existsSync(join(root, 'binding.js')) && readdirSync(root).some((f) => f.endsWith('.node'))

if (asDependency && !built) {
  console.error(
    'window-space: this checkout is not built, and a git URL or folder install does not build it: ' +
      'install the published package (`npm install window-space`), or build a clone ' +
      '(`npm ci && npm run build`, needs Rust stable) and install that folder (`npm install /path/to/window-space`).',
  )
  process.exit(1)
}
