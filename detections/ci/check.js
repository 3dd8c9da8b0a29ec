'use strict';
// Detection-pack CI: for every rule directory (one holding rule.kql and/or
// rule.spl) analyse the KQL with Microsoft's Kusto parser and binder against
// the harvester's tables, run it with the harness's evaluator over the
// rule's testdata and compare the row count, and lint the SPL structurally.
// Usage (through ./run, which installs the parser and writes the schema):
//   node check.js --schema schema.json [--self-test] [rule-dir ...]
// Without rule dirs: every <repo>/detections/*/ except detections/ci.
// --self-test: the sample rules under detections/ci/testdata/ (which must
// pass) and the negative cases under detections/ci/testdata/negative/ (which
// must fail with the message their expect-fail.json names).

const fs = require('fs');
const path = require('path');
const kusto = require('./lib/kusto');
const { Evaluator, Unsupported, DT, parseDate } = require('./lib/kqleval');
const testdata = require('./lib/testdata');
const spl = require('./lib/spllint');

function parseArgs(argv) {
  const o = { schema: null, selfTest: false, dirs: [], verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--schema') o.schema = argv[++i];
    else if (a === '--self-test') o.selfTest = true;
    else if (a === '-v' || a === '--verbose') o.verbose = true;
    else if (a.startsWith('-')) { console.error(`unknown flag ${a}`); process.exit(2); } else o.dirs.push(a);
  }
  if (!o.schema) { console.error('--schema is required'); process.exit(2); }
  return o;
}

function ruleDirs(root) {
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && d.name !== 'ci')
    .map((d) => path.join(root, d.name))
    .filter((d) => fs.existsSync(path.join(d, 'rule.kql')) || fs.existsSync(path.join(d, 'rule.spl')))
    .sort();
}

// Checks one rule directory; returns {kql: {ok, text}, spl: {ok, text}, notes: []}.
function checkRule(dir, g) {
  const res = { kql: { ok: true, text: '-' }, spl: { ok: true, text: '-' }, notes: [] };
  let td;
  try {
    td = testdata.load(dir, g.tables);
  } catch (e) {
    if (!(e instanceof testdata.DataError)) throw e;
    res.notes.push(`testdata: ${e.message}`);
    res.kql = { ok: false, text: 'FAIL testdata' };
    td = null;
  }
  if (td && td.present && !td.expected) {
    res.notes.push('testdata/ has no expected.json');
    res.kql = { ok: false, text: 'FAIL testdata' };
  }
  const kqlFile = path.join(dir, 'rule.kql');
  if (fs.existsSync(kqlFile) && res.kql.ok) res.kql = checkKql(fs.readFileSync(kqlFile, 'utf8'), td, g, res.notes);
  const splFile = path.join(dir, 'rule.spl');
  if (fs.existsSync(splFile)) res.spl = checkSpl(fs.readFileSync(splFile, 'utf8'), td, res.notes);
  return res;
}

function checkKql(text, td, g, notes) {
  const { code, diagnostics } = kusto.analyze(text, g.globals);
  const errors = diagnostics.filter((d) => d.severity === 'error');
  for (const d of diagnostics) notes.push(`kql ${d.severity} ${d.code} at ${d.line}:${d.col}: ${d.message}`);
  if (errors.length) return { ok: false, text: `FAIL ${errors.length} error${errors.length > 1 ? 's' : ''} (${errors[0].code})` };
  const want = td && td.expected ? td.expected.kql_rows : undefined;
  if (want === undefined) return { ok: true, text: 'ok (parsed; no kql_rows)' };
  if (want === null) return { ok: true, text: 'ok (parsed; kql_rows: null)' };
  const now = td.expected.now ? parseDate(td.expected.now) : new DT(Date.now());
  let out;
  try {
    out = new Evaluator({ tables: td.tables, watchlists: td.watchlists }, now).run(code);
  } catch (e) {
    if (e instanceof Unsupported) {
      notes.push(`kql: the harness's evaluator does not support ${e.message}; set "kql_rows": null in expected.json to only parse this rule`);
      return { ok: false, text: 'FAIL unsupported' };
    }
    notes.push(`kql: evaluation failed: ${e.message}`);
    return { ok: false, text: 'FAIL eval' };
  }
  const n = out.rows.length;
  if (n !== want) {
    notes.push(`kql: ${n} rows, expected ${want}`);
    for (const r of out.rows.slice(0, 5)) notes.push(`kql row: ${JSON.stringify(r)}`);
    return { ok: false, text: `FAIL ${n} rows, want ${want}` };
  }
  if (g.verbose) for (const r of out.rows) notes.push(`kql row: ${JSON.stringify(r)}`);
  return { ok: true, text: `ok, ${n} row${n === 1 ? '' : 's'}` };
}

function checkSpl(text, td, notes) {
  const { problems, lookups } = spl.lint(text);
  for (const p of problems) notes.push(`spl lint: ${p}`);
  if (problems.length) return { ok: false, text: `FAIL lint (${problems.length})` };
  if (td && td.present) {
    const missing = lookups.filter((l) => !td.lookups.has(l));
    if (missing.length) notes.push(`spl: lookups with no testdata/lookups/ file (not checked): ${missing.join(', ')}`);
  }
  return { ok: true, text: 'lint ok (not run)' };
}

// The evaluator's regression cases: each query over the file's records must
// analyse without errors and return the given number of rows.
function evaluatorCases(file, g) {
  if (!fs.existsSync(file)) return [];
  const spec = JSON.parse(fs.readFileSync(file, 'utf8'));
  const tables = new Map();
  for (const [name, recs] of Object.entries(spec.tables)) {
    const ws = name + '_CL';
    tables.set(ws, testdata.tableOf(file, ws, g.tables.get(ws), recs));
  }
  const now = parseDate(spec.now);
  return spec.cases.map((c, i) => {
    const res = { i: i + 1, kql: c.kql, ok: false, msg: '' };
    const { code, diagnostics } = kusto.analyze(c.kql, g.globals);
    const errs = diagnostics.filter((d) => d.severity === 'error');
    if (errs.length) { res.msg = `analyser: ${errs[0].code} ${errs[0].message}`; return res; }
    try {
      const n = new Evaluator({ tables, watchlists: new Map() }, now).run(code).rows.length;
      res.ok = n === c.rows;
      if (!res.ok) res.msg = `${n} rows, expected ${c.rows}`;
    } catch (e) {
      res.msg = `${e.constructor.name}: ${e.message}`;
    }
    return res;
  });
}

function table(rows) {
  const head = ['rule', 'KQL', 'SPL'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd();
  console.log(line(head));
  console.log(line(w.map((n) => '-'.repeat(n))));
  for (const r of rows) console.log(line(r));
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const schema = JSON.parse(fs.readFileSync(o.schema, 'utf8'));
  const g = kusto.buildGlobals(schema);
  g.verbose = o.verbose;
  const here = __dirname;
  const repo = path.resolve(here, '..', '..');
  const rel = (d) => path.relative(repo, d) || '.';

  let positive = o.dirs.map((d) => path.resolve(d));
  let negative = [];
  if (o.selfTest) {
    positive = ruleDirs(path.join(here, 'testdata'));
    negative = ruleDirs(path.join(here, 'testdata', 'negative'));
  } else if (!positive.length) {
    positive = ruleDirs(path.join(repo, 'detections'));
  }

  const rows = [];
  const details = [];
  let passed = 0; let failed = 0;
  for (const d of positive) {
    const r = checkRule(d, g);
    const ok = r.kql.ok && r.spl.ok;
    ok ? passed++ : failed++;
    rows.push([rel(d), r.kql.text, r.spl.text]);
    if (!ok || o.verbose) details.push([rel(d), r.notes]);
  }
  for (const d of negative) {
    const want = JSON.parse(fs.readFileSync(path.join(d, 'expect-fail.json'), 'utf8'));
    const r = checkRule(d, g);
    const problems = [];
    for (const lang of ['kql', 'spl']) {
      if (!(lang in want)) {
        if (!r[lang].ok) problems.push(`${lang} failed, but expect-fail.json does not expect it`);
        continue;
      }
      if (r[lang].ok) problems.push(`${lang} passed, expected a failure matching "${want[lang]}"`);
      else if (!r.notes.some((n) => n.includes(want[lang])) && !r[lang].text.includes(want[lang])) problems.push(`${lang} failed, but no message contains "${want[lang]}"`);
    }
    const ok = problems.length === 0;
    ok ? passed++ : failed++;
    rows.push([rel(d), `${r.kql.text}${'kql' in want ? ' (expected)' : ''}`, `${r.spl.text}${'spl' in want ? ' (expected)' : ''}`]);
    if (!ok || o.verbose) details.push([rel(d), problems.concat(r.notes)]);
  }

  let cases = [];
  if (o.selfTest) cases = evaluatorCases(path.join(here, 'testdata', 'evaluator-cases.json'), g);
  for (const c of cases) {
    c.ok ? passed++ : failed++;
    if (!c.ok) details.push([`evaluator case ${c.i}`, [c.kql, c.msg]]);
  }
  if (cases.length) rows.push([`detections/ci/testdata/evaluator-cases.json`, `${cases.filter((c) => c.ok).length}/${cases.length} cases ok`, '-']);

  const n = positive.length + negative.length;
  console.log(`${o.selfTest ? 'self-test' : 'detection pack'}: ${n} rule${n === 1 ? '' : 's'}${o.selfTest ? ` (${positive.length} samples that must pass, ${negative.length} that must fail) and ${cases.length} evaluator cases` : ''}`);
  if (rows.length) table(rows);
  for (const [d, notes] of details) {
    if (!notes.length) continue;
    console.log(`\n${d}:`);
    for (const nt of notes) console.log(`  ${nt}`);
  }
  console.log(`(${Date.now() - t0} ms)`);
  console.log(`${o.selfTest ? 'detections-self-test' : 'detections'}: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
