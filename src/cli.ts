#!/usr/bin/env node
/**
 * The `window-space` command for operators (the package `bin`). The command
 * line is in `cli/program.ts`, one module per family of commands beside it.
 *
 * @module
 */
import { err } from './cli/output'
import { main } from './cli/program'

// A reader that stops early (`export … | head`) is not an error of ours.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0)
})

main(process.argv).then(
  (code) => {
    process.exitCode = code
  },
  (e: unknown) => {
    err(`window-space: ${String(e)}`)
    process.exitCode = 1
  },
)
