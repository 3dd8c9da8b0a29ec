'use strict';
// Loads a rule's testdata/ directory (layout in ../README.md):
//   testdata/<Table>.jsonl            records of <Table>_CL, one JSON object a line
//   testdata/watchlists/<Alias>.jsonl  rows of _GetWatchlist('<Alias>')
//   testdata/lookups/<name>.csv        lookup files of the SPL (| inputlookup)
//   testdata/expected.json             {"kql_rows": N|null, "spl_rows": N|null, "now": "<datetime>"}

const fs = require('fs');
const path = require('path');
const { coerce, parseDate } = require('./kqleval');

class DataError extends Error {}

function readJsonl(file) {
  const out = [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines.forEach((line, i) => {
    const s = line.trim();
    if (s === '' || s.startsWith('//')) return;
    let v;
    try { v = JSON.parse(s); } catch (e) {
      throw new DataError(`${file}:${i + 1}: not JSON: ${e.message}`);
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new DataError(`${file}:${i + 1}: each line must be a JSON object`);
    out.push(v);
  });
  return out;
}

// Records (JSON objects) of table ws -> {columns, rows}: keys are column
// names or the harvester's renamed field names; values get the column types.
function tableOf(label, ws, cols, records) {
  const byName = new Map();
  for (const c of cols) {
    byName.set(c.name, c);
    if (c.field) byName.set(c.field, c);
  }
  const rows = records.map((rec, i) => {
    const row = {};
    for (const c of cols) row[c.name] = coerce(undefined, c.type);
    for (const [k, v] of Object.entries(rec)) {
      const c = byName.get(k);
      if (!c) throw new DataError(`${label}: record ${i + 1}: field ${k} is not a column of ${ws}`);
      row[c.name] = coerce(v, c.type);
    }
    if (!('Type' in rec)) row.Type = ws;
    return row;
  });
  return { columns: cols.map((c) => ({ name: c.name, type: c.type })), rows };
}

// tables: Map(workspaceName -> [{name, type, field}]) from lib/kusto.js buildGlobals
function load(dir, tables) {
  const td = path.join(dir, 'testdata');
  const res = { present: false, tables: new Map(), watchlists: new Map(), lookups: new Set(), expected: null, files: [] };
  if (!fs.existsSync(td)) return res;
  res.present = true;
  for (const f of fs.readdirSync(td).sort()) {
    const full = path.join(td, f);
    if (f === 'expected.json') continue;
    if (f === 'watchlists' || f === 'lookups') continue;
    if (!f.endsWith('.jsonl')) throw new DataError(`${full}: unexpected file (tables are <Table>.jsonl; see detections/ci/README.md)`);
    const table = f.slice(0, -'.jsonl'.length);
    const ws = table + '_CL';
    const cols = tables.get(ws);
    if (!cols) throw new DataError(`${full}: no table ${ws} in internal/tables (file names are the table name without _CL)`);
    res.tables.set(ws, tableOf(full, ws, cols, readJsonl(full)));
    res.files.push(f);
  }
  const wd = path.join(td, 'watchlists');
  if (fs.existsSync(wd)) {
    for (const f of fs.readdirSync(wd).sort()) {
      if (!f.endsWith('.jsonl')) throw new DataError(`${path.join(wd, f)}: watchlists are <Alias>.jsonl`);
      const rows = readJsonl(path.join(wd, f)).map((rec, i) => {
        if (!('SearchKey' in rec)) throw new DataError(`${path.join(wd, f)}: record ${i + 1}: no SearchKey`);
        return {
          _DTItemId: String(rec._DTItemId || `item-${i + 1}`),
          LastUpdatedTimeUTC: parseDate(rec.LastUpdatedTimeUTC || '2024-01-01T00:00:00Z'),
          SearchKey: rec.SearchKey === null ? '' : String(rec.SearchKey),
          WatchlistItem: rec,
        };
      });
      res.watchlists.set(f.slice(0, -'.jsonl'.length), rows);
    }
  }
  const ld = path.join(td, 'lookups');
  if (fs.existsSync(ld)) for (const f of fs.readdirSync(ld)) res.lookups.add(f);
  const ef = path.join(td, 'expected.json');
  if (fs.existsSync(ef)) {
    let e;
    try { e = JSON.parse(fs.readFileSync(ef, 'utf8')); } catch (err) { throw new DataError(`${ef}: not JSON: ${err.message}`); }
    if (!e || typeof e !== 'object' || Array.isArray(e)) throw new DataError(`${ef}: must be a JSON object`);
    for (const k of Object.keys(e)) {
      if (!['kql_rows', 'spl_rows', 'now', 'comment'].includes(k)) throw new DataError(`${ef}: unknown key ${k}`);
    }
    for (const k of ['kql_rows', 'spl_rows']) {
      if (k in e && e[k] !== null && !(Number.isInteger(e[k]) && e[k] >= 0)) throw new DataError(`${ef}: ${k} must be a non-negative integer or null`);
    }
    if ('now' in e && !parseDate(e.now)) throw new DataError(`${ef}: now must be a datetime`);
    res.expected = e;
  }
  return res;
}

module.exports = { load, tableOf, DataError };
