// Headless Chromium for the end-to-end tests: Debian's /usr/bin/chromium driven by playwright-core
// (never a downloaded browser), a fresh profile per launch, console errors collected, screenshots
// written under test-artifacts/ (gitignored; CI may keep them).
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.RRL_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'test-artifacts',
);

export interface LaunchOptions {
  /** Expose Chromium's software WebGPU adapter (SwiftShader); otherwise the GPU is disabled. */
  webgpu?: boolean;
  /** Viewport size of the page opened by `newPage`. */
  viewport?: { width: number; height: number };
  /** Extra command-line flags. */
  args?: string[];
}

export interface ConsoleEntry {
  type: string;
  text: string;
  url: string;
}

export interface BrowserSession {
  context: BrowserContext;
  /** Every console message of type error and every uncaught page error, in order. */
  errors: ConsoleEntry[];
  /** Every console message (all types), in order; useful for debugging failures. */
  messages: ConsoleEntry[];
  /**
   * Console errors a test expects (e.g. a failed request while the PACS is down): they do not fail
   * the e2e steps (see `afterEachStep`). Kept for the rest of the session.
   */
  expectErrors(pattern: RegExp): void;
  /** Whether an error is one a test said it expects. */
  isExpected(entry: ConsoleEntry): boolean;
  newPage(): Promise<Page>;
  /** Writes test-artifacts/<name>.png (full page, or only `selector` when given); returns the path. */
  screenshot(page: Page, name: string, selector?: string): Promise<string>;
  close(): Promise<void>;
}

/** Flags measured to work in these containers (headless, no GPU, no sandbox user namespace). */
export function chromiumArgs(options: LaunchOptions = {}): string[] {
  const base = [
    '--no-sandbox',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-dev-shm-usage',
  ];
  const gpu = options.webgpu
    ? ['--enable-unsafe-webgpu', '--ignore-gpu-blocklist']
    : ['--disable-gpu'];
  return [...base, ...gpu, ...(options.args ?? [])];
}

export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM_PATH);
}

export async function launchBrowser(options: LaunchOptions = {}): Promise<BrowserSession> {
  if (!chromiumAvailable()) {
    throw new Error(
      `Chromium was expected at ${CHROMIUM_PATH} but is not there: install Debian's package ` +
        '(`apt-get install -y chromium`) or set RRL_CHROMIUM to its path.',
    );
  }
  const userDataDir = await mkdtemp(path.join(tmpdir(), 'rrl-chromium-'));
  const args = chromiumArgs(options);
  // A persistent context is the only way to give Chromium our own --user-data-dir.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args,
    viewport: options.viewport ?? { width: 1600, height: 1000 },
  });
  const errors: ConsoleEntry[] = [];
  const messages: ConsoleEntry[] = [];
  const watch = (page: Page): void => {
    page.on('console', (msg) => {
      const entry = { type: msg.type(), text: msg.text(), url: page.url() };
      messages.push(entry);
      if (entry.type === 'error') errors.push(entry);
    });
    page.on('pageerror', (err) => {
      const entry = { type: 'pageerror', text: String(err?.stack ?? err), url: page.url() };
      messages.push(entry);
      errors.push(entry);
    });
  };
  context.on('page', watch);
  for (const p of context.pages()) watch(p);

  let closed = false;
  const expected: RegExp[] = [];
  return {
    context,
    errors,
    messages,
    expectErrors(pattern) {
      expected.push(pattern);
    },
    isExpected(entry) {
      return expected.some((re) => re.test(entry.text));
    },
    async newPage() {
      const existing = context.pages().find((p) => p.url() === 'about:blank');
      return existing ?? context.newPage();
    },
    async screenshot(page, name, selector) {
      await mkdir(ARTIFACTS_DIR, { recursive: true });
      const file = path.join(ARTIFACTS_DIR, `${name.replace(/[^A-Za-z0-9._-]+/g, '_')}.png`);
      if (selector) await page.locator(selector).first().screenshot({ path: file });
      else await page.screenshot({ path: file, fullPage: false });
      return file;
    },
    async close() {
      if (closed) return;
      closed = true;
      await context.close().catch(() => undefined);
      await rm(userDataDir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}
