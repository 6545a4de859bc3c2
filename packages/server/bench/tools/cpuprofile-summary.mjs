// Sums a V8 CPU profile (what `npm run bench -- --cpu-prof DIR` writes, one file per thread; the
// server's event loop is the largest) into the time of each function and of each package:
//   node packages/server/bench/tools/cpuprofile-summary.mjs FILE [--from S] [--to S] [--top N]
//        [--callers REGEX]
// --from/--to keep the samples between those seconds of the profile (a bench run's measured part
// starts after start-up and the warm-up). --callers: the self time of the functions matching REGEX,
// by the three frames that called them (which statement's `executeQuery`, whose `postMessage`).
// Native work called from JavaScript (a better-sqlite3 statement, an RSA signature) counts in the
// JavaScript function that called it. For measuring only.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { from: { type: 'string' }, to: { type: 'string' }, top: { type: 'string' }, callers: { type: 'string' } },
});
if (positionals.length !== 1) {
  console.error('usage: cpuprofile-summary.mjs FILE [--from S] [--to S] [--top N] [--callers REGEX]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(positionals[0], 'utf8'));
const fromUs = Number(values.from ?? 0) * 1e6;
const toUs = values.to === undefined ? Infinity : Number(values.to) * 1e6;
const top = Number(values.top ?? 40);

const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parents = new Map();
for (const n of profile.nodes) for (const child of n.children ?? []) parents.set(child, n.id);

// Self time per profile node, within the window.
const self = new Map();
let at = 0;
let total = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  at += dt;
  if (at < fromUs || at > toUs) return;
  self.set(id, (self.get(id) ?? 0) + dt);
  total += dt;
});

const shortUrl = (url) => url.replace(/.*node_modules\//, 'nm/').replace(/.*\/packages\//, 'pk/');
const frame = (id) => {
  const { functionName, url, lineNumber } = nodes.get(id).callFrame;
  return `${functionName || '(anonymous)'} ${shortUrl(url)}:${lineNumber}`;
};
/** A package (nm/name, nm/@scope/name), a folder of ours (pk/server/dist/store), or the frame itself. */
const group = (id) => {
  const url = shortUrl(nodes.get(id).callFrame.url);
  if (url.startsWith('nm/')) return url.split('/').slice(0, url.startsWith('nm/@') ? 3 : 2).join('/');
  if (url.startsWith('pk/')) return url.split('/').slice(0, 4).join('/');
  return url || nodes.get(id).callFrame.functionName;
};
const add = (map, key, us) => map.set(key, (map.get(key) ?? 0) + us);
const print = (title, map) => {
  console.log(`\n${title}`);
  for (const [key, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${((100 * us) / total).toFixed(2).padStart(7)}%  ${key}`);
};

console.log(`${(total / 1000).toFixed(0)} ms of samples${values.from || values.to ? ` between ${values.from ?? 0} s and ${values.to ?? 'the end'}` : ''}`);
if (values.callers !== undefined) {
  const pattern = new RegExp(values.callers);
  const byCallers = new Map();
  for (const [id, us] of self) {
    if (!pattern.test(frame(id))) continue;
    const chain = [frame(id)];
    for (let p = parents.get(id); p !== undefined && chain.length < 4; p = parents.get(p)) chain.push(frame(p));
    add(byCallers, chain.join(' ← '), us);
  }
  print(`self time of /${values.callers}/, by caller`, byCallers);
} else {
  const byGroup = new Map();
  const byFunction = new Map();
  for (const [id, us] of self) {
    add(byGroup, group(id), us);
    add(byFunction, frame(id), us);
  }
  print('self time by package or folder', byGroup);
  print('self time by function', byFunction);
}
