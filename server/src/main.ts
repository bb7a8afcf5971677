/**
 * CLI: `node dist/node/server.js [--config FILE] [--port N] [--host H]` (`npm run build:node` compiles it;
 * `npm run server -- …` does both). Configuration also
 * comes from `RRL_*` environment variables (see server/src/config.ts and the README).
 * Stops cleanly on SIGINT / SIGTERM.
 */
import { parseArgs } from 'node:util';

import { startServer } from './app.js';
import { ConfigError, ENV_VARS, type ServerConfigInput } from './config.js';

function usage(): string {
  const vars = Object.entries(ENV_VARS)
    .map(([k, v]) => `  ${k.padEnd(18)} ${v}`)
    .join('\n');
  return (
    'Usage: node dist/node/server.js [--config FILE] [--host HOST] [--port PORT]\n' +
    '         [--allowed-host NAME]... [--behind-proxy | --tls-key KEY.pem --tls-cert CERT.pem]\n\n' +
    'Off the loopback address the server needs HTTPS: --tls-key/--tls-cert, or --behind-proxy when\n' +
    'an HTTPS reverse proxy fronts it. Clients must use localhost, 127.0.0.1, [::1] or an\n' +
    '--allowed-host name (DNS rebinding protection).\n\n' +
    `Environment:\n${vars}\n`
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'behind-proxy': { type: 'boolean' },
      'tls-key': { type: 'string' },
      'tls-cert': { type: 'string' },
      'allowed-host': { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(usage());
    return;
  }
  const override: ServerConfigInput = {};
  if (values.host) override.host = values.host;
  if (values['behind-proxy']) override.behindProxy = true;
  if (values['allowed-host']) override.allowedHosts = values['allowed-host'];
  if (values['tls-key'] || values['tls-cert']) {
    override.tls = { keyFile: values['tls-key'] ?? '', certFile: values['tls-cert'] ?? '' };
  }
  if (values.port !== undefined) {
    const n = Number(values.port);
    if (!Number.isInteger(n))
      throw new ConfigError(`--port must be an integer; found "${values.port}".`);
    override.port = n;
  }
  const server = await startServer(override, values.config ? { configFile: values.config } : {});
  process.stderr.write(`RRL-MedSAM companion server: open ${server.url}/\n`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${signal}: stopping\n`);
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((e: unknown) => {
  const err = e as Error & { code?: string };
  if (err instanceof ConfigError) {
    process.stderr.write(`Configuration error: ${err.message}\n`);
  } else if (err.code === 'EADDRINUSE') {
    process.stderr.write(
      `Cannot listen: the port is already in use (${err.message}). Choose another with RRL_PORT or --port.\n`,
    );
  } else {
    process.stderr.write(`The server failed to start: ${err.message}\n`);
  }
  process.exit(1);
});
