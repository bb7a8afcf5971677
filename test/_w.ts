import { Worker } from 'node:worker_threads';
const t = performance.now();
const url = new URL('./_ref1.ts', import.meta.url).href;
const code = `import('tsx/esm/api').then((m) => m.register()).then(() => import(${JSON.stringify(url)}))`;
const ws = [0, 1].map(() => new Worker(code, { eval: true, argv: ['1'] }));
await Promise.all(ws.map((w) => new Promise((res, rej) => { w.on('exit', res); w.on('error', rej); })));
console.log(`two workers done in ${(performance.now() - t).toFixed(0)} ms`);
