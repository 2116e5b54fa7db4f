// Pins the README's links into the published package (the screenshot and the docs/ pages, served
// by jsDelivr from the tarball) to package.json's version. Runs after `changeset version` (npm run
// version-packages); test/readme/screenshot.test.ts and readme.test.ts fail if they ever disagree.
//   node scripts/sync-readme-version.mjs [README path]
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const { name, version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const readmePath = resolve(process.argv[2] ?? join(root, 'README.md'));
const readme = readFileSync(readmePath, 'utf8');
const pinned = new RegExp(`(https://cdn\\.jsdelivr\\.net/npm/${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}@)[^/\\s)]+/`, 'g');
const synced = readme.replace(pinned, `$1${version}/`);
if (synced !== readme) writeFileSync(readmePath, synced);
console.log(`${readmePath}: ${name}@${version}`);
