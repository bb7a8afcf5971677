/**
 * Starts the product (called by scripts/start.sh after dependencies and bundles are in place):
 *
 *  1. Orthanc as our own child process: config and storage under `<var>/orthanc`, authentication
 *     on with a generated password kept in `<var>/secrets.json` (mode 0600), 127.0.0.1 only;
 *  2. the demo studies, seeded when the PACS holds no study yet (PACS team's `seedDemo`);
 *  3. a model in `<var>/models` (when empty: the untrained test-fixture model from
 *     scripts/make-test-model.ts, labelled as such in the viewer);
 *  4. the companion server, then prints the viewer's URL.
 *
 * Ctrl-C (SIGINT) or SIGTERM stops the server and Orthanc; a second start reuses `<var>/`.
 *
 *   node dist/node/start.js [--port 3000] [--host 127.0.0.1] [--pacs-port 8042]
 *        [--pacs-dicom-port 4242] [--var-dir var] [--no-seed] [--no-model]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { COMPILED } from '@rrl/models/io/installRoot.js';
import { startServer, type RunningServer } from '@rrl/server/app.js';
import {
  commaList,
  ConfigError,
  loadConfig,
  REPO_ROOT,
  type ServerConfigInput,
} from '@rrl/server/config.js';
import { seedDemo } from '@rrl/server/demo/index.js';
import {
  parseModalities,
  startOrthanc,
  type DicomModality,
  type OrthancProcess,
} from '@rrl/server/pacs/orthanc.js';
import { tsLoaderArgs } from '@rrl/server/jobs/workerExecutor.js';

interface StartOptions {
  host: string;
  port: number;
  pacsPort: number;
  pacsDicomPort: number;
  varDir: string;
  seed: boolean;
  model: boolean;
  /**
   * Server settings given as flags (--behind-proxy, --tls-key/--tls-cert, --allowed-host); their
   * RRL_* variables are read by the server's own configuration.
   */
  server: ServerConfigInput;
  /** Modalities allowed to C-STORE into the PACS's DICOM port (exposed on the network then). */
  dicomModalities: DicomModality[];
  /** Ports given explicitly (flag or environment): never replaced by a free one. */
  explicit: { port: boolean; pacsPort: boolean; pacsDicomPort: boolean };
}

interface Secrets {
  orthanc: { username: string; password: string };
}

const say = (line: string): void => {
  process.stderr.write(`[start] ${line}\n`);
};

function intOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new ConfigError(`${name} must be a port number (0-65535); found "${value}".`);
  }
  return n;
}

function readOptions(): StartOptions | undefined {
  const { values } = parseArgs({
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      'pacs-port': { type: 'string' },
      'pacs-dicom-port': { type: 'string' },
      'var-dir': { type: 'string' },
      'no-seed': { type: 'boolean' },
      'no-model': { type: 'boolean' },
      'behind-proxy': { type: 'boolean' },
      'tls-key': { type: 'string' },
      'tls-cert': { type: 'string' },
      'allowed-host': { type: 'string', multiple: true },
      'pacs-dicom-allow': { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      [
        'Usage: bash scripts/start.sh [options]',
        '  --port N             companion server port (RRL_PORT, default 3000; 0 = any free port)',
        '  --host H             address the server listens on (RRL_HOST, default 127.0.0.1)',
        '  --pacs-port N        Orthanc HTTP port (RRL_ORTHANC_PORT, default 8042; 0 = any free)',
        '  --pacs-dicom-port N  Orthanc DICOM port (RRL_ORTHANC_DICOM_PORT, default 4242)',
        '  --var-dir DIR        data folder (RRL_VAR_DIR, default var/)',
        '  --no-seed            do not seed the demo studies into an empty PACS',
        '  --no-model           do not create the test-fixture model when var/models is empty',
        '  --behind-proxy       an HTTPS reverse proxy fronts the server (RRL_BEHIND_PROXY=1);',
        '                       needed, or --tls-key/--tls-cert, for a --host other than loopback',
        '  --tls-key F --tls-cert F  serve HTTPS with this PEM key and certificate',
        '  --allowed-host NAME  a host name clients use to reach the server (repeatable;',
        '                       RRL_ALLOWED_HOSTS=a,b); localhost/127.0.0.1/[::1] always work',
        '  --pacs-dicom-allow AET@HOST:PORT  expose the PACS DICOM port on the network and accept',
        '                       C-STORE from this modality only (repeatable; RRL_PACS_DICOM_ALLOW).',
        '                       Without it the DICOM port listens on 127.0.0.1 only.',
        '',
      ].join('\n'),
    );
    return undefined;
  }
  const env = process.env;
  return {
    host: values.host ?? env.RRL_HOST ?? '127.0.0.1',
    port: intOption('--port / RRL_PORT', values.port ?? env.RRL_PORT, 3000),
    pacsPort: intOption(
      '--pacs-port / RRL_ORTHANC_PORT',
      values['pacs-port'] ?? env.RRL_ORTHANC_PORT,
      8042,
    ),
    pacsDicomPort: intOption(
      '--pacs-dicom-port / RRL_ORTHANC_DICOM_PORT',
      values['pacs-dicom-port'] ?? env.RRL_ORTHANC_DICOM_PORT,
      4242,
    ),
    varDir: path.resolve(values['var-dir'] ?? env.RRL_VAR_DIR ?? path.join(REPO_ROOT, 'var')),
    server: {
      ...(values['behind-proxy'] ? { behindProxy: true } : {}),
      ...(values['allowed-host'] ? { allowedHosts: values['allowed-host'] } : {}),
      ...(values['tls-key'] || values['tls-cert']
        ? {
            tls: {
              keyFile: path.resolve(values['tls-key'] ?? ''),
              certFile: path.resolve(values['tls-cert'] ?? ''),
            },
          }
        : {}),
    },
    dicomModalities: parseModalities(
      values['pacs-dicom-allow'] ?? commaList(env.RRL_PACS_DICOM_ALLOW),
    ),
    seed: !values['no-seed'],
    model: !values['no-model'],
    explicit: {
      port: (values.port ?? env.RRL_PORT ?? '') !== '',
      pacsPort: (values['pacs-port'] ?? env.RRL_ORTHANC_PORT ?? '') !== '',
      pacsDicomPort: (values['pacs-dicom-port'] ?? env.RRL_ORTHANC_DICOM_PORT ?? '') !== '',
    },
  };
}

/** Whether `port` can be bound on `host` right now. */
function portFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/**
 * A default port that is taken (say, by Debian's own orthanc service on 8042/4242) is replaced by
 * 0 (any free port) with a note; an explicitly chosen port is kept (and fails clearly if taken).
 */
async function usablePort(
  what: string,
  port: number,
  host: string,
  explicit: boolean,
  flag: string,
): Promise<number> {
  if (explicit || port === 0 || (await portFree(port, host))) return port;
  say(`${what} port ${port} is in use (${flag} chooses one); using a free port instead`);
  return 0;
}

/** `<var>/secrets.json`: created once with a random Orthanc password, kept private (0600). */
async function loadSecrets(varDir: string): Promise<Secrets> {
  const file = path.join(varDir, 'secrets.json');
  if (existsSync(file)) {
    const s = JSON.parse(await readFile(file, 'utf8')) as Partial<Secrets>;
    if (!s.orthanc?.username || !s.orthanc.password) {
      throw new Error(
        `${file} has no orthanc.username / orthanc.password. Restore it, or move var/ away to ` +
          'start with a fresh PACS.',
      );
    }
    if (((await stat(file)).mode & 0o077) !== 0) await chmod(file, 0o600);
    return s as Secrets;
  }
  const secrets: Secrets = {
    orthanc: { username: 'rrl', password: randomBytes(24).toString('base64url') },
  };
  await writeFile(file, JSON.stringify(secrets, null, 2) + '\n', { mode: 0o600 });
  say(`created ${file} (PACS credentials, mode 0600)`);
  return secrets;
}

/** An Orthanc left running by a start that was killed hard (its pid file and command line). */
async function stopOrphanOrthanc(varDir: string): Promise<void> {
  const pidFile = path.join(varDir, 'orthanc.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number((await readFile(pidFile, 'utf8')).trim());
  if (!Number.isInteger(pid) || pid <= 1) return;
  let cmdline = '';
  try {
    cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0/g, ' ');
  } catch {
    return; // not running
  }
  const ourConfig = path.join(varDir, 'orthanc', 'orthanc.json');
  if (!/Orthanc/.test(cmdline) || !cmdline.includes(ourConfig)) return;
  say(`stopping the Orthanc (pid ${pid}) left running by an earlier start`);
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Files 0600 and folders 0700 under `dir` (what an earlier version left readable by others). */
async function tightenTree(dir: string): Promise<void> {
  await chmod(dir, 0o700);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await tightenTree(p);
    else if (e.isFile() && ((await stat(p)).mode & 0o077) !== 0) await chmod(p, 0o600);
  }
}

interface LockInfo {
  pid: number;
  startedAt: string;
  url?: string;
}

/** Whether `pid` is a running start.ts (not a recycled pid of some other program). */
async function isStartProcess(pid: number): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) return false;
  try {
    const cmd = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0/g, ' ');
    return /start\.(ts|js)/.test(cmd);
  } catch {
    return false;
  }
}

/**
 * One product per data folder: `<var>/start.lock` (created exclusively) holds the running start's
 * pid and, once it is up, its viewer URL. A second start on the same folder says where the first
 * runs and exits without touching it; a lock left by a start that died is taken over.
 */
async function takeLock(
  varDir: string,
): Promise<{ update(url: string): Promise<void>; release(): Promise<void> } | LockInfo> {
  const file = path.join(varDir, 'start.lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(file, 'wx', 0o600);
      const info: LockInfo = { pid: process.pid, startedAt: new Date().toISOString() };
      await fh.writeFile(JSON.stringify(info) + '\n');
      await fh.close();
      return {
        update: (url) => writeFile(file, JSON.stringify({ ...info, url }) + '\n', { mode: 0o600 }),
        release: async () => {
          try {
            const now = JSON.parse(await readFile(file, 'utf8')) as LockInfo;
            if (now.pid === process.pid) await rm(file, { force: true });
          } catch {
            /* gone already */
          }
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let held: LockInfo | undefined;
    try {
      held = JSON.parse(await readFile(file, 'utf8')) as LockInfo;
    } catch {
      held = undefined; // being written, or garbage
    }
    if (held && (await isStartProcess(held.pid))) return held;
    if (!held && attempt === 0) {
      await new Promise((r) => setTimeout(r, 300));
      continue;
    }
    say('taking over the lock of an earlier start that is no longer running');
    await rm(file, { force: true });
  }
  throw new Error(`could not take the lock ${file}; remove it if no start runs on this folder`);
}

async function countStudies(pacs: OrthancProcess): Promise<number> {
  const auth = 'Basic ' + Buffer.from(`${pacs.username}:${pacs.password}`).toString('base64');
  const res = await fetch(`${pacs.dicomWebRoot}/studies?limit=1`, {
    headers: { Authorization: auth, Accept: 'application/dicom+json' },
  });
  if (!res.ok) throw new Error(`the PACS answered HTTP ${res.status} to a study query`);
  const text = await res.text();
  return text.trim() === '' ? 0 : (JSON.parse(text) as unknown[]).length;
}

/**
 * Seeds the demo on the first start (PACS empty). A seeding that was interrupted (Ctrl-C) is
 * finished on the next start: `<var>/demo.seeded` marks completion, and `seedDemo` only sends the
 * studies the PACS lacks. A PACS that already held other studies is left alone.
 */
async function seedIfEmpty(pacs: OrthancProcess, varDir: string): Promise<void> {
  const marker = path.join(varDir, 'demo.seeded');
  if (existsSync(marker)) return;
  const started = existsSync(path.join(varDir, 'seeding-demo'));
  if (!started && (await countStudies(pacs)) > 0) {
    say('the PACS already holds studies: not seeding the demo');
    return;
  }
  await writeFile(path.join(varDir, 'seeding-demo'), `${new Date().toISOString()}\n`);
  say(
    started
      ? 'finishing the demo seeding an earlier start began…'
      : 'seeding the demo studies (first start; takes a minute or two)…',
  );
  const t0 = Date.now();
  const res = await seedDemo({
    dicomWebRoot: pacs.dicomWebRoot,
    username: pacs.username,
    password: pacs.password,
    outDir: path.join(varDir, 'demo'),
    log: (m) => say(m),
  });
  await writeFile(marker, JSON.stringify({ seededAt: new Date().toISOString() }) + '\n');
  await rm(path.join(varDir, 'seeding-demo'), { force: true });
  say(
    `demo: atlas + ${res.subjects.length} synthetic subjects in the PACS after ` +
      `${((Date.now() - t0) / 1000).toFixed(1)} s (ground truth labels in ${res.demoDir})`,
  );
}

async function hasModel(modelsDir: string): Promise<boolean> {
  try {
    for (const d of await readdir(modelsDir, { withFileTypes: true })) {
      if (d.isDirectory() && existsSync(path.join(modelsDir, d.name, 'metadata.json'))) return true;
    }
  } catch {
    /* missing folder: no model */
  }
  return false;
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`${args.join(' ')} failed (${signal ?? `exit code ${code}`})`)),
    );
  });
}

async function ensureModel(modelsDir: string): Promise<void> {
  if (await hasModel(modelsDir)) return;
  say(
    'no model in the models folder: writing the untrained TEST-FIXTURE model (not for clinical use)',
  );
  await mkdir(modelsDir, { recursive: true });
  // Beside this bundle when compiled (dist/node), else the TypeScript source through tsx.
  const entry = COMPILED
    ? fileURLToPath(new URL('./make-test-model.js', import.meta.url))
    : path.join(REPO_ROOT, 'scripts', 'make-test-model.ts');
  await run(process.execPath, [...tsLoaderArgs(entry), entry, '--out', modelsDir]);
}

async function main(): Promise<void> {
  const opts = readOptions();
  if (!opts) return;
  // The server's settings are checked before anything starts (a refused --host, say).
  loadConfig({
    host: opts.host,
    port: opts.port,
    ...opts.server,
  });
  process.umask(0o077); // var/ holds PHI, secrets and models: files 0600, folders 0700
  await mkdir(opts.varDir, { recursive: true, mode: 0o700 });
  const lock = await takeLock(opts.varDir);
  if (!('release' in lock)) {
    say(
      `RRL-MedSAM already runs on this data folder (${opts.varDir}): process ${lock.pid}, started ` +
        `${lock.startedAt}${lock.url ? `, viewer at ${lock.url}/` : ' (still starting)'}. ` +
        'Use that one, or stop it first (Ctrl-C in its terminal, or `kill ' +
        `${lock.pid}\`); to run a second, independent copy give it its own --var-dir.`,
    );
    process.exitCode = 3;
    return;
  }
  await tightenTree(opts.varDir);
  const secrets = await loadSecrets(opts.varDir);
  await stopOrphanOrthanc(opts.varDir);
  const pacsPort = await usablePort(
    'Orthanc HTTP',
    opts.pacsPort,
    '0.0.0.0',
    opts.explicit.pacsPort,
    '--pacs-port',
  );
  const pacsDicomPort = await usablePort(
    'Orthanc DICOM',
    opts.pacsDicomPort,
    '0.0.0.0',
    opts.explicit.pacsDicomPort,
    '--pacs-dicom-port',
  );
  const port = await usablePort('viewer', opts.port, opts.host, opts.explicit.port, '--port');

  const pacsOptions = {
    storageDir: path.join(opts.varDir, 'orthanc'),
    username: secrets.orthanc.username,
    password: secrets.orthanc.password,
    name: 'RRL-MedSAM-PACS',
    dicomModalities: opts.dicomModalities,
  };
  let pacs: OrthancProcess | undefined;
  let server: RunningServer | undefined;
  let stopping = false;
  const shutdown = async (why: string, code: number): Promise<never> => {
    if (!stopping) {
      stopping = true;
      say(`${why}: stopping`);
      await server?.close().catch(() => undefined);
      await pacs?.stop().catch(() => undefined);
      if (pacs) await rm(path.join(opts.varDir, 'orthanc.pid'), { force: true });
      await lock.release();
      say('stopped');
    }
    process.exit(code);
  };
  let signals = 0;
  const onSignal = (sig: string): void => {
    signals += 1;
    if (signals > 1) {
      say('second signal: exiting now');
      process.exit(130);
    }
    void shutdown(sig, 0);
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  try {
    say(`starting Orthanc (storage ${path.join(opts.varDir, 'orthanc')})`);
    pacs = await startOrthanc({ ...pacsOptions, httpPort: pacsPort, dicomPort: pacsDicomPort });
    await writeFile(path.join(opts.varDir, 'orthanc.pid'), `${pacs.pid}\n`);
    say(
      `Orthanc is up at ${pacs.url} (HTTP on 127.0.0.1 only; DICOM port ${pacs.dicomPort} ` +
        (opts.dicomModalities.length > 0
          ? `on the network for ${opts.dicomModalities.map((m) => m.aet).join(', ')} only)`
          : 'on 127.0.0.1 only)'),
    );
    if (stopping) return;

    if (opts.seed) await seedIfEmpty(pacs, opts.varDir);
    const modelsDir = path.join(opts.varDir, 'models');
    if (opts.model) await ensureModel(modelsDir);
    if (stopping) return;

    server = await startServer({
      host: opts.host,
      port,
      ...opts.server,
      modelsDir,
      dataDir: path.join(opts.varDir, 'server'),
      pacs: {
        dicomWebRoot: pacs.dicomWebRoot,
        username: pacs.username,
        password: pacs.password,
      },
    });
  } catch (e) {
    // Interrupted (Ctrl-C during seeding, say): the signal's shutdown is already under way.
    if (stopping) return;
    const err = e as Error & { code?: string };
    const hint =
      err.code === 'EADDRINUSE'
        ? ` The server port ${opts.port} is in use: stop what uses it, or choose another with ` +
          '--port / RRL_PORT.'
        : /already in use/.test(err.message)
          ? ` Orthanc's ports (HTTP ${opts.pacsPort}, DICOM ${opts.pacsDicomPort}) must be free: stop ` +
            'the other Orthanc (e.g. the Debian service: systemctl stop orthanc) or choose other ' +
            'ports with --pacs-port / --pacs-dicom-port (RRL_ORTHANC_PORT / RRL_ORTHANC_DICOM_PORT).'
          : '';
    say(`could not start: ${err.message}${hint}`);
    await shutdown('start failed', 1);
    return;
  }

  // Orthanc went away on its own (crashed, killed by the OOM killer): restart it on the same
  // ports and storage, backing off 1, 2, 4 … 60 s between tries; the server keeps serving the
  // viewer meanwhile (the proxy answers 502, health 503) and jobs that found the PACS down retry.
  const restartOptions = { ...pacsOptions, httpPort: pacs.httpPort, dicomPort: pacs.dicomPort };
  let failures = 0;
  let restarting = false;
  const watch = setInterval(() => {
    const current = pacs;
    if (stopping || restarting || !current || existsSync(`/proc/${current.pid}`)) return;
    restarting = true;
    const delay = Math.min(60_000, 1000 * 2 ** failures);
    say(`Orthanc exited unexpectedly; restarting it in ${delay / 1000} s`);
    void (async () => {
      await new Promise((r) => setTimeout(r, delay));
      if (stopping) return;
      try {
        pacs = await startOrthanc(restartOptions);
        await writeFile(path.join(opts.varDir, 'orthanc.pid'), `${pacs.pid}\n`);
        failures = 0;
        say(`Orthanc is back (pid ${pacs.pid})`);
      } catch (e) {
        failures += 1;
        say(`could not restart Orthanc: ${(e as Error).message.split('\n')[0] ?? ''}`);
      } finally {
        restarting = false;
      }
    })();
  }, 1000);
  watch.unref();

  await lock.update(server.url);
  process.stdout.write(
    `\nRRL-MedSAM for OHIF is running.\n  Viewer:  ${server.url}/\n` +
      `  PACS:    ${pacs.url} (user ${pacs.username}; password in ${path.join(opts.varDir, 'secrets.json')})\n` +
      '  Stop:    Ctrl-C\n\n',
  );
}

main().catch((e: unknown) => {
  if (e instanceof ConfigError) {
    say(`not started: ${e.message}`);
    process.exit(2);
  }
  say(`failed: ${(e as Error).message}`);
  process.exit(1);
});
