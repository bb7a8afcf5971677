/**
 * Where the installation lives, for sources run by tsx and for the compiled bundles (dist/node)
 * alike: the nearest folder above this module whose package.json declares the npm workspaces.
 * Default data folders (var/), the plans (models/plans) and the viewer's bundles (dist/) are found
 * from it.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The nearest folder at or above `from` with a workspace-root package.json. */
export function findInstallRoot(from: string): string {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ('workspaces' in (JSON.parse(readFileSync(pkg, 'utf8')) as object)) return dir;
      } catch {
        /* not ours: keep climbing */
      }
    }
    if (path.dirname(dir) === dir) {
      throw new Error(
        `No workspace root (package.json with "workspaces") above ${from}: run from an installed copy of RRL-MedSAM.`,
      );
    }
  }
}

export const REPO_ROOT = findInstallRoot(path.dirname(fileURLToPath(import.meta.url)));

/**
 * True in the compiled bundles (dist/node/*.js), false when run from TypeScript sources: a
 * module that starts a sibling entry (the job worker, the teacher import) picks its file by it.
 */
export const COMPILED = !import.meta.url.endsWith('.ts');

/**
 * The entry module `name` beside the calling module (`from`: its `import.meta.url`): `<name>.js`
 * in the compiled bundles (dist/node, where entries and chunks share one folder), `<name>.ts`
 * from the sources.
 */
export function siblingEntry(name: string, from: string): URL {
  return new URL(`./${name}.${COMPILED ? 'js' : 'ts'}`, from);
}
