/** Command-line options shared by `train` and `eval`: parsing, usage text, exit codes. */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Bad input or usage: the command exits with code 2 and prints the message. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OptionSpec {
  name: string;
  value?: string;
  /** Boolean flag (no value). */
  flag?: boolean;
  help: string;
}

export interface CommandSpec {
  command: string;
  summary: string;
  options: OptionSpec[];
  examples: string[];
}

export function usage(spec: CommandSpec): string {
  const rows = spec.options.map((o) => [`--${o.name}${o.value ? ` ${o.value}` : ''}`, o.help]);
  const w = Math.max(...rows.map((r) => r[0]!.length));
  return [
    `Usage: npm run ${spec.command} -- [options]`,
    '',
    spec.summary,
    '',
    'Options:',
    ...rows.map(([a, b]) => `  ${a!.padEnd(w)}  ${b!}`),
    '',
    'Examples:',
    ...spec.examples.map((e) => `  ${e}`),
    '',
  ].join('\n');
}

export type ParsedOptions = Record<string, string | boolean | undefined>;

/** The options of `spec` and the positional arguments (for commands with sub-commands). */
export function parseCommand(
  spec: CommandSpec,
  argv: string[],
): { values: ParsedOptions; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const o of spec.options) options[o.name] = { type: o.flag ? 'boolean' : 'string' };
  options.help = { type: 'boolean', short: 'h' };
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options,
      strict: true,
      allowPositionals: true,
    });
    return { values: values as ParsedOptions, positionals };
  } catch (e) {
    throw new UsageError(`${(e as Error).message} (see --help for the options).`);
  }
}

export function parseOptions(spec: CommandSpec, argv: string[]): ParsedOptions {
  const { values, positionals } = parseCommand(spec, argv);
  if (positionals.length > 0) {
    throw new UsageError(
      `unexpected argument "${positionals[0]}"; every input is given with an option (see --help).`,
    );
  }
  return values;
}

export function str(o: ParsedOptions, name: string): string | undefined {
  const v = o[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function required(o: ParsedOptions, name: string, what: string): string {
  const v = str(o, name);
  if (v === undefined) throw new UsageError(`--${name} is required: ${what}.`);
  return v;
}

export function positiveInt(o: ParsedOptions, name: string, dflt: number, min = 1): number {
  const v = str(o, name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name}: expected an integer ≥ ${min}, found "${v}".`);
  }
  return n;
}

export interface Io {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown; isTTY?: boolean };
}

export const processIo: Io = { stdout: process.stdout, stderr: process.stderr };

/**
 * True when the module at `url` is the program being run (not imported by a test or by another
 * command). `name` is the command's file name without extension: in a compiled bundle every module
 * shares the bundle's URL, so the name tells `teacher.js` (which includes code of train.ts) from
 * `train`.
 */
export function isMain(url: string, name: string): boolean {
  const arg = process.argv[1];
  if (!arg) return false;
  try {
    const file = realpathSync(arg);
    return (
      pathToFileURL(file).href === url && path.basename(file).replace(/\.[cm]?[jt]s$/, '') === name
    );
  } catch {
    return false;
  }
}
