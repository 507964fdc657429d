/**
 * The `window-space` command line: its commands, options, help and exit
 * statuses. Each command lives in its own module and is a thin printer over
 * the library: the core decides, this prints.
 *
 * @module
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { Command, CommanderError, Option } from 'commander'

import { fail, type Opts } from './args'
import { auditCommand } from './audit'
import { adminCommand, retention } from './change'
import { gcCommand } from './gc'
import { exportRows, grid, inspect, metricsCommand, serveMetrics } from './look'
import { ReaderGone } from './output'
import { migrateCommand } from './migrate'
import { isConnectionString, PG_COMMANDS, pgAdmin, pgAudit, pgExport, pgGrid, pgInspect, pgMetrics, pgRetention, pgServeMetrics, pgVerify, refuseConnectionString, refuseDatabaseOptions } from './pg'
import { repairCommand } from './repair'
import { verifyCommand } from './verify'
import { SLOT_KIND_NAMES } from '../vocabulary'

const READ_ONLY = 'Read-only: opens every file read-only, takes no lock, creates and changes nothing (works on a live directory and on a read-only copy).'

const DATABASE = `With a postgres:// or postgresql:// connection string in place of the directory, works on the window space --space (default: default) of that database, with its stored schedule; a space the database does not hold is refused, never created. Commands other than ${PG_COMMANDS.join(', ')} refuse a connection string.`

function program(): Command {
  const p = new Command('window-space')
  p.description('Operate a window-space state directory: inspect, verify, clear, retire, collect garbage, repair, migrate, export, metrics.')
    .version((JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version)
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', '\nExit status: 0 ok, 1 problems found or the state or the output could not be read or written, 2 bad input.\nWindow ranges are --from (inclusive) to --to (exclusive), like the library.')
    .exitOverride()
    .configureOutput({ outputError: (s, write) => write(s) })

  // Commander calls an action with (dir, options, command); ours take (dir, options).
  // A connection string goes to the command's PostgreSQL form, or is refused.
  const run =
    (f: (dir: string, o: Opts) => unknown, pg?: (url: string, o: Opts) => Promise<void>) =>
    async (...args: unknown[]): Promise<void> => {
      const dir = args[0] as string
      if (isConnectionString(dir)) {
        if (!pg) refuseConnectionString((args[2] as Command).name())
        await pg(dir, args[1] as Opts)
        return
      }
      if (pg) refuseDatabaseOptions(args[1] as Opts)
      await f(dir, args[1] as Opts)
    }
  /** The options that name a window space in a database. */
  const database = (c: Command) =>
    c
      .option('--space <name>', 'with a connection string: the window space (default: default)')
  const readOnly = (c: Command) => c.addHelpText('after', `\n${READ_ONLY}`)

  readOnly(
    p
      .command('inspect')
      .argument('<dir>', 'state directory, or a postgres:// connection string')
      .description('schedule, sizes, symbols, per-ledger and per-slot status counts, event counters, stale claims')
      .option('--by-symbol', 'also count statuses per symbol (scans the ledgers)')
      .option('--json', 'print one JSON document')
      .action(run(inspect, pgInspect)),
  )

  readOnly(
    p
      .command('grid')
      .argument('<dir>', 'state directory, or a postgres:// connection string')
      .description('a status grid of a window range: one character per slot (. Empty, P Pending, S stale Pending, F Filled, C Cleared, R Retired)')
      .requiredOption('--symbol <symbol>', 'the symbol')
      .option('--from <window>', 'first window (default 0)')
      .option('--to <window>', 'end window, exclusive (default: the window count)')
      .option('--slot <kinds>', 'slot kinds, comma-separated, or all (default all)')
      .option('--color', 'force colour')
      .option('--no-color', 'no colour (default: colour only on a terminal that supports it, and NO_COLOR unset)')
      .option('--json', 'print one JSON document')
      .action(run(grid, pgGrid)),
  )

  readOnly(
    p
      .command('verify')
      .argument('<dir>', 'state directory, or a postgres:// connection string')
      .description('check every invariant of the state directory; exit 1 with a list of what is wrong (a live directory verifies clean: a slot that changes while it is checked is read again)')
      .option('--artifacts', 'also check that artifact files of Filled slots exist and match their records')
      .option('--json', 'print one JSON document')
      .action(run(verifyCommand, pgVerify)),
  )

  for (const action of ['clear', 'retire'] as const) {
    p.command(action)
      .argument('<dir>', 'state directory, or a postgres:// connection string')
      .description(action === 'clear' ? 'force-clear slots (Pending or Filled → Cleared: engines will redo them)' : 'retire slots (→ Retired, terminal: never claimed again)')
      .option('--symbol <symbols>', 'a symbol, a comma-separated list, or all')
      .option('--slot <kinds>', `slot kinds, comma-separated, or all (${SLOT_KIND_NAMES.join(', ')})`)
      .option('--window <window>', 'one window')
      .option('--from <window>', 'first window of a range')
      .option('--to <window>', 'end of the range, exclusive')
      .option('--dry-run', 'say what would change, change nothing')
      .option('-y, --yes', 'do not ask for confirmation (required when stdin is not a terminal)')
      .option('--reason <text>', 'why, for the audit trail (default: this command line)')
      .option('--actor <name>', 'who, for the audit trail (default: user@host pid N)')
      .option('--json', 'print one JSON document')
      .addHelpText('after', '\nNothing changes unless the audit trail can be written: an intent line is written before the first slot changes.')
      .action(run((dir, o) => adminCommand(action, dir, o), (url, o) => pgAdmin(action, url, o)))
  }

  p.command('gc')
    .argument('<dir>', 'state directory')
    .description('find payload records and artifact files no live slot uses; with --delete remove the files (restart-safe) and record the collection in gc.log')
    .option('--delete', 'remove garbage artifact files and mark their records collected in gc.log')
    .addOption(new Option('--min-age <duration>', 'leave untied files and temp files younger than this, e.g. 90s, 15m, 2h').default('1h'))
    .option('--reason <text>', 'why, for the audit trail (default: this command line)')
    .option('--actor <name>', 'who, for the audit trail (default: user@host pid N)')
    .option('--json', 'print one JSON document')
    .addHelpText(
      'after',
      '\nA file written for a claim (writeArtifact(claim, ...)) is kept while its claim is in flight and collected once the slot moved past it; a file at a path the engine chose is collected only when no slot is Pending and it is older than --min-age. Symbolic links are never followed. A killed gc is finished by the next gc --delete.',
    )
    .action(run(gcCommand))

  p.command('repair')
    .argument('<dir>', 'state directory')
    .description('accept lost payload records and symbols that make a bootstrap refuse the directory: clear the Filled slots that refer to lost records, mark their ids lost and name lost symbols, so no id is ever handed out twice')
    .option('--dry-run', 'say what was found and what would change, change nothing')
    .option('--reason <text>', 'why, for the audit trail (default: this command line)')
    .option('--actor <name>', 'who, for the audit trail (default: user@host pid N)')
    .option('--json', 'print one JSON document')
    .addHelpText(
      'after',
      '\nNeeds the directory to itself: refused while any engine or tool has it open. An intent line goes to the audit trail before anything changes, an outcome line after. Killed at any point, run it again: it finishes what is left, and until then the directory stays refused.',
    )
    .action(run(repairCommand))

  p.command('migrate')
    .argument('<dir>', 'state directory')
    .description('convert a state directory made by an older version of window-space (format version 1) to this version\'s format, keeping the old files in migrated-from-format-1/')
    .option('--dry-run', 'say what would be converted, change nothing')
    .option('--reason <text>', 'why, for the audit trail (default: this command line)')
    .option('--actor <name>', 'who, for the audit trail (default: user@host pid N)')
    .option('--json', 'print one JSON document')
    .addHelpText(
      'after',
      '\nOffline: refused while any engine or tool has the directory open, and every bootstrap waits until it is done. The converted files are built and verified beside the old ones before any is switched. Killed at any point, run it again: it starts again or finishes the switch.',
    )
    .action(run(migrateCommand))

  p.command('retention')
    .argument('<dir>', 'state directory, or a postgres:// connection string')
    .description(
      'retire every slot of every symbol in the windows before the last --keep windows before now (or --at TIME, or --before-window W); on a database, the line is rounded down to a partition boundary and the partitions before it are dropped whole',
    )
    .option('--keep <n>', 'how many windows before the anchor to keep')
    .option('--at <time>', 'count back from this time instead of now (ISO 8601, e.g. 2026-11-30T14:30:00Z)')
    .option('--before-window <window>', 'count back from this window instead of now')
    .option('--dry-run', 'say what would change, change nothing')
    .option('--force', 'with a connection string: retire slots that are Pending under a running lease too (refused otherwise)')
    .option('-y, --yes', 'do not ask for confirmation (required when stdin is not a terminal)')
    .option('--reason <text>', 'why, for the audit trail (default: this command line)')
    .option('--actor <name>', 'who, for the audit trail (default: user@host pid N)')
    .option('--json', 'print one JSON document')
    .action(run(retention, pgRetention))

  readOnly(
    p
      .command('audit')
      .argument('<dir>', 'state directory, or a postgres:// connection string')
      .description('print the audit trail (audit.log): force-clears, retires, takeovers, gc and retention runs, with who and why')
      .option('--last <n>', 'only the last N entries (in the text, an intent and its outcome are one entry; with --json, the last N lines)')
      .option('--json', 'print the entries as JSON lines')
      .action(run(auditCommand, pgAudit)),
  )

  readOnly(
    p
      .command('metrics')
      .argument('<dir>', 'state directory, or a postgres:// connection string')
      .description('print the Prometheus metrics of the directory once (text format)')
      .action(run((dir) => metricsCommand(dir), pgMetrics)),
  )

  readOnly(
    p
      .command('serve-metrics')
      .argument('<dir>', 'state directory, or a postgres:// connection string')
      .description('serve the Prometheus metrics over HTTP on 127.0.0.1 (GET /metrics) until interrupted (SIGINT or SIGTERM: scrapes in flight finish first)')
      .option('--port <port>', 'TCP port on 127.0.0.1 (0 picks a free one)')
      .action(run(serveMetrics, pgServeMetrics)),
  )

  readOnly(
    p
      .command('export')
      .argument('<dir>', 'state directory, or a postgres:// connection string')
      .description('print rows as JSON lines (rows with at least one non-Empty slot, unless --all-rows)')
      .option('--symbol <symbols>', 'a symbol, a comma-separated list, or all (default all)')
      .option('--ledger <ledger>', 'trade or enrichment (default both)')
      .option('--from <window>', 'first window (default 0)')
      .option('--to <window>', 'end window, exclusive (default: the window count)')
      .option('--all-rows', 'also print rows whose slots are all Empty')
      .action(run(exportRows, pgExport)),
  )

  for (const c of p.commands) {
    if ((PG_COMMANDS as readonly string[]).includes(c.name())) {
      database(c).addHelpText('after', `\n${DATABASE}`)
    }
  }
  for (const c of p.commands) c.exitOverride().configureOutput({ outputError: (s, write) => write(s) }).showHelpAfterError(`(run window-space ${c.name()} --help for usage)`)
  return p
}

/** Runs the command line; resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  const p = program()
  const name = argv.find((a, i) => i >= 2 && !a.startsWith('-')) ?? 'window-space'
  try {
    await p.parseAsync(argv)
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0
      return 2
    }
    if (e instanceof ReaderGone) return 0
    return fail(name, e)
  }
  return typeof process.exitCode === 'number' ? process.exitCode : 0
}
