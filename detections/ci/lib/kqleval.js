'use strict';
// The harness's KQL evaluator. NOT Microsoft's engine: no KQL engine can be
// installed on this project's machines (see ../README.md), so this walks the
// syntax tree that Microsoft's own parser and binder (lib/kusto.js) built and
// evaluates the subset of KQL the detection rules use over the test records.
// Column names and order come from the binder (so `count_`, `dcount_X`,
// `min_TimeGenerated` are Kusto's own names). Anything outside the subset
// throws Unsupported naming the construct, rather than guessing.

const { load } = require('./kusto');

class Unsupported extends Error {}
class EvalError extends Error {}

// Values: string, number (int/long/real), boolean, null, DT (datetime),
// TS (timespan), and dynamic values as plain JSON values (objects, arrays).
class DT { constructor(ms) { this.ms = ms; } toJSON() { return fmtDate(this); } }
class TS { constructor(ms) { this.ms = ms; } toJSON() { return fmtSpan(this); } }

let SK = null;
let KIND = null;
function init() {
  if (SK) return;
  const K = load();
  SK = K.Syntax.SyntaxKind;
  KIND = {};
  for (const k of Object.keys(SK)) if (typeof SK[k] === 'number') KIND[SK[k]] = k;
}
const kindName = (n) => KIND[n.Kind];

function listItems(sepList) {
  const out = [];
  if (!sepList) return out;
  for (let i = 0; i < sepList.Count; i++) {
    const it = sepList.getItem(i);
    out.push(it.Element !== undefined ? it.Element : it);
  }
  return out;
}

function columnsOf(node) {
  const rt = node.ResultType;
  if (!rt || !rt.Columns) return null;
  const cols = [];
  for (let i = 0; i < rt.Columns.Count; i++) {
    const c = rt.Columns.getItem(i);
    cols.push({ name: c.Name, type: c.Type.Name });
  }
  return cols;
}

// ---- value helpers ------------------------------------------------------

function parseDate(s) {
  if (s instanceof DT) return s;
  if (typeof s !== 'string' || s === '') return null;
  let t = s.trim().replace(' ', 'T');
  if (/^\d{4}-\d{2}-\d{2}$/.test(t)) t += 'T00:00:00';
  if (!/(Z|[+-]\d{2}:?\d{2})$/.test(t)) t += 'Z';
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? null : new DT(ms);
}

function fmtDate(d) {
  return new Date(d.ms).toISOString().replace('.000Z', 'Z');
}

function fmtSpan(t) {
  let ms = t.ms;
  const neg = ms < 0; if (neg) ms = -ms;
  const d = Math.floor(ms / 86400000); ms -= d * 86400000;
  const h = Math.floor(ms / 3600000); ms -= h * 3600000;
  const m = Math.floor(ms / 60000); ms -= m * 60000;
  const s = Math.floor(ms / 1000); ms -= s * 1000;
  const p = (x) => String(x).padStart(2, '0');
  return `${neg ? '-' : ''}${d ? d + '.' : ''}${p(h)}:${p(m)}:${p(s)}${ms ? '.' + String(ms).padStart(3, '0') + '0000' : ''}`;
}

function toStr(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (v instanceof DT) return fmtDate(v);
  if (v instanceof TS) return fmtSpan(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

function toNum(v, integer) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return integer ? Math.trunc(v) : v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v instanceof DT || v instanceof TS) return v.ms;
  if (typeof v === 'string') {
    const s = v.trim();
    if (s === '' || !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return null;
    const n = Number(s);
    return integer ? Math.trunc(n) : n;
  }
  return null;
}

function toBool(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') {
    const s = v.trim().toLowerCase();
    if (s === 'true') return true;
    if (s === 'false') return false;
    const n = toNum(s, true);
    return n === null ? null : n !== 0;
  }
  return null;
}

function isNullish(v) { return v === null || v === undefined; }

// Convert a JSON value from a test record to the column's Kusto type.
function coerce(v, type) {
  if (v === undefined) v = null;
  switch (type) {
    case 'string': return v === null ? '' : (typeof v === 'string' ? v : JSON.stringify(v));
    case 'long': case 'int': return toNum(v, true);
    case 'real': case 'decimal': return toNum(v, false);
    case 'bool': return toBool(v);
    case 'datetime': return parseDate(typeof v === 'string' ? v : null);
    case 'timespan': return typeof v === 'number' ? new TS(v) : null;
    case 'dynamic':
      if (typeof v === 'string') {
        const s = v.trim();
        if ((s.startsWith('{') && s.endsWith('}')) || (s.startsWith('[') && s.endsWith(']'))) {
          try { return JSON.parse(s); } catch (e) { return v; }
        }
      }
      return v;
    default: return v;
  }
}

function cmp(a, b) {
  // null when not comparable (Kusto: comparisons with null are null -> false)
  if (isNullish(a) || isNullish(b)) return null;
  if (a instanceof DT || b instanceof DT) {
    const x = a instanceof DT ? a : parseDate(toStr(a));
    const y = b instanceof DT ? b : parseDate(toStr(b));
    if (!x || !y) return null;
    return Math.sign(x.ms - y.ms);
  }
  if (a instanceof TS || b instanceof TS) {
    const x = a instanceof TS ? a.ms : toNum(a); const y = b instanceof TS ? b.ms : toNum(b);
    if (x === null || y === null) return null;
    return Math.sign(x - y);
  }
  if (typeof a === 'number' || typeof b === 'number') {
    const x = toNum(a); const y = toNum(b);
    if (x === null || y === null) return null;
    return Math.sign(x - y);
  }
  if (typeof a === 'boolean' || typeof b === 'boolean') {
    const x = toBool(a); const y = toBool(b);
    if (x === null || y === null) return null;
    return x === y ? 0 : (x ? 1 : -1);
  }
  const x = toStr(a); const y = toStr(b);
  return x < y ? -1 : (x > y ? 1 : 0);
}

function eq(a, b) {
  if (typeof a === 'string' && typeof b === 'string') return a === b;
  if (isNullish(a) || isNullish(b)) return null;
  if ((typeof a === 'object' && !(a instanceof DT) && !(a instanceof TS)) ||
      (typeof b === 'object' && !(b instanceof DT) && !(b instanceof TS))) {
    return JSON.stringify(a) === JSON.stringify(b);
  }
  const c = cmp(a, b);
  return c === null ? null : c === 0;
}

const isAlnum = (ch) => /[A-Za-z0-9]/.test(ch);

// Kusto `has`: the needle is found as whole term(s): a term is a maximal run
// of ASCII letters and digits; case-insensitive.
function has(hay, needle, cs) {
  let h = toStr(hay); let n = toStr(needle);
  if (n === '') return true;
  if (!cs) { h = h.toLowerCase(); n = n.toLowerCase(); }
  let i = h.indexOf(n);
  while (i !== -1) {
    const beforeOk = !isAlnum(n[0]) || i === 0 || !isAlnum(h[i - 1]);
    const end = i + n.length;
    const afterOk = !isAlnum(n[n.length - 1]) || end === h.length || !isAlnum(h[end]);
    if (beforeOk && afterOk) return true;
    i = h.indexOf(n, i + 1);
  }
  return false;
}

function hasPrefix(hay, needle, cs) {
  let h = toStr(hay); let n = toStr(needle);
  if (!cs) { h = h.toLowerCase(); n = n.toLowerCase(); }
  let i = h.indexOf(n);
  while (i !== -1) {
    if (i === 0 || !isAlnum(h[i - 1]) || !isAlnum(n[0])) return true;
    i = h.indexOf(n, i + 1);
  }
  return false;
}

function hasSuffix(hay, needle, cs) {
  let h = toStr(hay); let n = toStr(needle);
  if (!cs) { h = h.toLowerCase(); n = n.toLowerCase(); }
  let i = h.indexOf(n);
  while (i !== -1) {
    const end = i + n.length;
    if (end === h.length || !isAlnum(h[end]) || !isAlnum(n[n.length - 1])) return true;
    i = h.indexOf(n, i + 1);
  }
  return false;
}

function ci(v) { return toStr(v).toLowerCase(); }

// ---- the evaluator -------------------------------------------------------

class Evaluator {
  // data: {tables: Map(workspaceName -> {columns, rows}), watchlists: Map(alias -> rows)}
  constructor(data, now) {
    init();
    this.data = data;
    this.now = now instanceof DT ? now : new DT(Date.now());
  }

  run(code) {
    const root = code.Syntax;
    if (kindName(root) !== 'QueryBlock') throw new Unsupported(`query kind ${kindName(root)}`);
    const env = new Map();
    let result = null;
    for (const st of listItems(root.Statements)) {
      switch (kindName(st)) {
        case 'LetStatement': {
          const name = st.Name.SimpleName;
          const ex = st.Expression;
          env.set(name, this.isTabular(ex) ? { table: this.tab(ex, env) } : { scalar: this.scalar(ex, null, env) });
          break;
        }
        case 'ExpressionStatement':
          result = this.tab(st.Expression, env);
          break;
        default:
          throw new Unsupported(`statement ${kindName(st)}`);
      }
    }
    if (!result) throw new EvalError('the query has no tabular expression statement');
    return result;
  }

  isTabular(ex) {
    const rt = ex.ResultType;
    return !!(rt && rt.Columns !== undefined && rt.Columns !== null && typeof rt.Columns.Count === 'number');
  }

  // ---- tabular ----
  tab(node, env) {
    switch (kindName(node)) {
      case 'ParenthesizedExpression': return this.tab(node.Expression, env);
      case 'NameReference': {
        const name = node.SimpleName;
        if (env.has(name) && env.get(name).table) return env.get(name).table;
        const sym = node.ReferencedSymbol;
        if (sym && this.data.tables.has(sym.Name)) return this.data.tables.get(sym.Name);
        if (sym && sym.Name && /_CL$/.test(sym.Name)) {
          // a known table without a test data file: empty
          return { columns: columnsOf(node) || [], rows: [] };
        }
        throw new Unsupported(`tabular reference ${name}`);
      }
      case 'FunctionCallExpression': {
        const fn = node.Name.SimpleName;
        if (fn === '_GetWatchlist') {
          const args = listItems(node.ArgumentList.Expressions).map((a) => this.scalar(a, null, env));
          const alias = toStr(args[0]);
          const rows = this.data.watchlists.get(alias);
          if (!rows) throw new EvalError(`_GetWatchlist('${alias}'): no testdata/watchlists/${alias}.jsonl`);
          return { columns: columnsOf(node), rows };
        }
        throw new Unsupported(`tabular function ${fn}()`);
      }
      case 'PipeExpression': {
        const input = this.tab(node.Expression, env);
        return this.op(node.Operator, input, env, node);
      }
      default:
        throw new Unsupported(`tabular expression ${kindName(node)}`);
    }
  }

  op(op, input, env, pipeNode) {
    const outCols = columnsOf(pipeNode) || columnsOf(op);
    switch (kindName(op)) {
      case 'FilterOperator':
        return { columns: input.columns, rows: input.rows.filter((r) => toBool(this.scalar(op.Condition, r, env)) === true) };
      case 'TakeOperator': {
        const n = toNum(this.scalar(op.Expression, null, env), true);
        return { columns: input.columns, rows: input.rows.slice(0, n) };
      }
      case 'CountOperator':
        return { columns: outCols, rows: [{ [outCols[0].name]: input.rows.length }] };
      case 'ProjectOperator': {
        const exprs = listItems(op.Expressions);
        if (exprs.length !== outCols.length) throw new Unsupported('project with tuple-valued expressions');
        const rows = input.rows.map((r) => {
          const o = {};
          exprs.forEach((e, i) => { o[outCols[i].name] = this.scalar(kindName(e) === 'SimpleNamedExpression' ? e.Expression : e, r, env); });
          return o;
        });
        return { columns: outCols, rows };
      }
      case 'ExtendOperator': {
        const exprs = listItems(op.Expressions);
        const inNames = new Set(input.columns.map((c) => c.name));
        const fresh = outCols.filter((c) => !inNames.has(c.name)).map((c) => c.name);
        let k = 0;
        const targets = exprs.map((e) => {
          if (kindName(e) === 'SimpleNamedExpression') return { name: e.Name.SimpleName, ex: e.Expression };
          if (kindName(e) === 'NameReference') return { name: e.SimpleName, ex: e };
          return { name: fresh[k++], ex: e };
        });
        const rows = input.rows.map((r) => {
          const o = Object.assign({}, r);
          for (const t of targets) o[t.name] = this.scalar(t.ex, r, env);
          return o;
        });
        return { columns: outCols, rows };
      }
      case 'ProjectAwayOperator':
      case 'ProjectKeepOperator':
      case 'ProjectReorderOperator': {
        const rows = input.rows.map((r) => {
          const o = {};
          for (const c of outCols) o[c.name] = r[c.name];
          return o;
        });
        return { columns: outCols, rows };
      }
      case 'ProjectRenameOperator': {
        const map = new Map();
        for (const e of listItems(op.Expressions)) {
          if (kindName(e) !== 'SimpleNamedExpression') throw new Unsupported('project-rename form');
          map.set(e.Name.SimpleName, e.Expression.SimpleName);
        }
        const rows = input.rows.map((r) => {
          const o = {};
          for (const c of outCols) o[c.name] = map.has(c.name) ? r[map.get(c.name)] : r[c.name];
          return o;
        });
        return { columns: outCols, rows };
      }
      case 'DistinctOperator': {
        const seen = new Set(); const rows = [];
        for (const r of input.rows) {
          const o = {};
          for (const c of outCols) o[c.name] = r[c.name];
          const key = JSON.stringify(outCols.map((c) => keyOf(o[c.name])));
          if (!seen.has(key)) { seen.add(key); rows.push(o); }
        }
        // distinct over expressions other than plain columns is not supported
        for (const e of listItems(op.Expressions)) {
          if (kindName(e) !== 'NameReference' && kindName(e) !== 'StarExpression') throw new Unsupported('distinct over expressions');
        }
        return { columns: outCols, rows };
      }
      case 'SortOperator':
        return { columns: input.columns, rows: this.sorted(input.rows, listItems(op.Expressions), env) };
      case 'TopOperator': {
        const n = toNum(this.scalar(op.Expression, null, env), true);
        return { columns: input.columns, rows: this.sorted(input.rows, [op.ByExpression], env).slice(0, n) };
      }
      case 'SummarizeOperator':
        return this.summarize(op, input, env, outCols);
      default:
        throw new Unsupported(`operator ${kindName(op)}`);
    }
  }

  // sort/order by and top: desc by default, nulls last for desc and first for asc (Kusto's defaults)
  sorted(rows, orderedExprs, env) {
    const keys = orderedExprs.map((e) => {
      const ordered = kindName(e) === 'OrderedExpression';
      const ord = ordered && e.Ordering ? e.Ordering : null;
      const dir = ord && ord.AscOrDescKeyword && String(ord.AscOrDescKeyword.Text).toLowerCase() === 'asc' ? 1 : -1;
      const nullsTok = ord && ord.NullsClause && ord.NullsClause.FirstOrLastKeyword ? String(ord.NullsClause.FirstOrLastKeyword.Text).toLowerCase() : '';
      const nullsFirst = nullsTok ? nullsTok === 'first' : dir === 1;
      return { ex: ordered ? e.Expression : e, dir, nullsFirst };
    });
    const withKeys = rows.map((r, i) => ({ r, i, k: keys.map((k) => this.scalar(k.ex, r, env)) }));
    withKeys.sort((a, b) => {
      for (let j = 0; j < keys.length; j++) {
        const x = a.k[j]; const y = b.k[j];
        const xn = isNullish(x); const yn = isNullish(y);
        if (xn || yn) { if (xn && yn) continue; return (xn ? -1 : 1) * (keys[j].nullsFirst ? 1 : -1); }
        const c = cmp(x, y);
        if (c) return c * keys[j].dir;
      }
      return a.i - b.i;
    });
    return withKeys.map((w) => w.r);
  }

  summarize(op, input, env, outCols) {
    const byExprs = op.ByClause ? listItems(op.ByClause.Expressions) : [];
    const aggs = listItems(op.Aggregates);
    const unwrap = (e) => (kindName(e) === 'SimpleNamedExpression' ? e.Expression : e);
    const byCols = outCols.slice(0, byExprs.length);
    const aggCols = outCols.slice(byExprs.length);
    let argAgg = null;
    if (outCols.length !== byExprs.length + aggs.length) {
      // arg_max(expr, cols...)/arg_min as the only aggregate: its columns are the rest
      const a = unwrap(aggs[0]);
      const fn = kindName(a) === 'FunctionCallExpression' ? a.Name.SimpleName : '';
      if (aggs.length !== 1 || (fn !== 'arg_max' && fn !== 'arg_min')) throw new Unsupported('summarize with several tuple-valued aggregates');
      argAgg = { sign: fn === 'arg_max' ? 1 : -1, by: listItems(a.ArgumentList.Expressions)[0] };
    }
    const groups = new Map();
    for (const r of input.rows) {
      const keyVals = byExprs.map((e) => this.scalar(unwrap(e), r, env));
      const key = JSON.stringify(keyVals.map(keyOf));
      if (!groups.has(key)) groups.set(key, { keyVals, rows: [] });
      groups.get(key).rows.push(r);
    }
    if (byExprs.length === 0 && groups.size === 0) groups.set('[]', { keyVals: [], rows: [] });
    const rows = [];
    for (const g of groups.values()) {
      const o = {};
      byCols.forEach((c, i) => { o[c.name] = g.keyVals[i]; });
      if (argAgg) {
        let best = null; let bestV = null;
        for (const r of g.rows) {
          const v = this.scalar(argAgg.by, r, env);
          if (isNullish(v)) continue;
          if (best === null || cmp(v, bestV) === argAgg.sign) { best = r; bestV = v; }
        }
        aggCols.forEach((c, i) => { o[c.name] = i === 0 ? bestV : (best ? (best[c.name] === undefined ? null : best[c.name]) : null); });
      } else {
        aggs.forEach((a, i) => { o[aggCols[i].name] = this.aggregate(unwrap(a), g.rows, env); });
      }
      rows.push(o);
    }
    return { columns: outCols, rows };
  }

  aggregate(node, rows, env) {
    if (kindName(node) !== 'FunctionCallExpression') throw new Unsupported(`aggregate ${kindName(node)}`);
    const fn = node.Name.SimpleName;
    const args = listItems(node.ArgumentList.Expressions);
    const vals = (i) => rows.map((r) => this.scalar(args[i], r, env));
    const pred = (i) => rows.map((r) => toBool(this.scalar(args[i], r, env)) === true);
    const nonNull = (vs) => vs.filter((v) => !isNullish(v) && v !== '');
    const distinct = (vs) => {
      const seen = new Map();
      for (const v of vs) { const k = JSON.stringify(keyOf(v)); if (!seen.has(k)) seen.set(k, v); }
      return [...seen.values()];
    };
    const minmax = (vs, sign) => {
      let best = null;
      for (const v of nonNull(vs)) { if (best === null || cmp(v, best) === sign) best = v; }
      return best;
    };
    const filterBy = (vs, ps) => vs.filter((_, i) => ps[i]);
    switch (fn) {
      case 'count': return rows.length;
      case 'countif': return pred(0).filter(Boolean).length;
      case 'dcount': return distinct(nonNull(vals(0))).length;
      case 'dcountif': return distinct(nonNull(filterBy(vals(0), pred(1)))).length;
      case 'min': return minmax(vals(0), -1);
      case 'max': return minmax(vals(0), 1);
      case 'minif': return minmax(filterBy(vals(0), pred(1)), -1);
      case 'maxif': return minmax(filterBy(vals(0), pred(1)), 1);
      case 'sum': return nonNull(vals(0)).reduce((s, v) => s + toNum(v), 0);
      case 'sumif': return nonNull(filterBy(vals(0), pred(1))).reduce((s, v) => s + toNum(v), 0);
      case 'avg': { const v = nonNull(vals(0)).map((x) => toNum(x)); return v.length ? v.reduce((s, x) => s + x, 0) / v.length : null; }
      case 'make_set': return distinct(nonNull(vals(0)).map(dyn));
      case 'make_set_if': return distinct(nonNull(filterBy(vals(0), pred(1))).map(dyn));
      case 'make_list': return nonNull(vals(0)).map(dyn);
      case 'make_list_if': return nonNull(filterBy(vals(0), pred(1))).map(dyn);
      case 'take_any': case 'any': return rows.length ? this.scalar(args[0], rows[0], env) : null;
      default: throw new Unsupported(`aggregate ${fn}()`);
    }
  }

  // ---- scalar ----
  scalar(node, row, env) {
    const k = kindName(node);
    switch (k) {
      case 'ParenthesizedExpression': return this.scalar(node.Expression, row, env);
      case 'StringLiteralExpression':
      case 'CompoundStringLiteralExpression':
        return String(node.LiteralValue);
      case 'LongLiteralExpression':
      case 'IntLiteralExpression':
      case 'RealLiteralExpression':
        return Number(String(node.LiteralValue));
      case 'BooleanLiteralExpression':
        return String(node.LiteralValue).toLowerCase() === 'true';
      case 'TimespanLiteralExpression': {
        const v = node.LiteralValue;
        if (v && v.ticks !== undefined) return new TS(Number(String(v.ticks)) / 10000);
        throw new Unsupported(`timespan literal ${node.ToString()}`);
      }
      case 'DateTimeLiteralExpression': {
        const m = /^\s*datetime\s*\(\s*(.*?)\s*\)\s*$/.exec(node.ToString());
        if (m && m[1] === 'null') return null;
        const d = m ? parseDate(m[1]) : null;
        if (!d) throw new Unsupported(`datetime literal ${node.ToString()}`);
        return d;
      }
      case 'DynamicExpression':
        return JSON.parse(String(node.LiteralValue));
      case 'NullLiteralExpression':
        return null;
      case 'NameReference': return this.nameRef(node, row, env);
      case 'PathExpression': {
        const base = this.scalar(node.Expression, row, env);
        const sel = node.Selector;
        let key;
        if (kindName(sel) === 'NameReference') key = sel.SimpleName;
        else if (kindName(sel) === 'BracketedExpression') key = this.scalar(sel.Expression, row, env);
        else throw new Unsupported(`path selector ${kindName(sel)}`);
        return member(base, key);
      }
      case 'ElementExpression': {
        const base = this.scalar(node.Expression, row, env);
        const sel = node.Selector;
        if (kindName(sel) !== 'BracketedExpression') throw new Unsupported(`element selector ${kindName(sel)}`);
        return member(base, this.scalar(sel.Expression, row, env));
      }
      case 'AndExpression': {
        const l = toBool(this.scalar(node.Left, row, env));
        if (l === false) return false;
        const r = toBool(this.scalar(node.Right, row, env));
        if (r === false) return false;
        return l === true && r === true ? true : null;
      }
      case 'OrExpression': {
        const l = toBool(this.scalar(node.Left, row, env));
        if (l === true) return true;
        const r = toBool(this.scalar(node.Right, row, env));
        if (r === true) return true;
        return l === false && r === false ? false : null;
      }
      case 'UnaryMinusExpression': {
        const v = this.scalar(node.Expression, row, env);
        if (v instanceof TS) return new TS(-v.ms);
        const n = toNum(v); return n === null ? null : -n;
      }
      case 'UnaryPlusExpression': return this.scalar(node.Expression, row, env);
      // Kusto.Language names `in~` InCsExpression and `!in~` NotInCsExpression
      case 'InExpression': case 'NotInExpression': case 'InCsExpression': case 'NotInCsExpression':
        return this.inExpr(k, node, row, env);
      case 'HasAnyExpression': {
        const l = this.scalar(node.Left, row, env);
        return this.listValues(node.Right, row, env).some((n) => has(l, n, false));
      }
      case 'HasAllExpression': {
        const l = this.scalar(node.Left, row, env);
        return this.listValues(node.Right, row, env).every((n) => has(l, n, false));
      }
      case 'BetweenExpression': case 'NotBetweenExpression': {
        const v = this.scalar(node.Left, row, env);
        const lo = this.scalar(node.Right.First, row, env);
        const hi = this.scalar(node.Right.Second, row, env);
        const a = cmp(v, lo); const b = cmp(v, hi);
        if (a === null || b === null) return null;
        const inside = a >= 0 && b <= 0;
        return k === 'BetweenExpression' ? inside : !inside;
      }
      case 'FunctionCallExpression': return this.call(node, row, env);
      default:
        if (node.Left !== undefined && node.Right !== undefined) return this.binary(k, node, row, env);
        throw new Unsupported(`expression ${k} (${node.ToString().trim().slice(0, 40)})`);
    }
  }

  nameRef(node, row, env) {
    const name = node.SimpleName;
    const sym = node.ReferencedSymbol;
    // Kusto.Language.Symbols.SymbolKind: Variable = 2, Column = 9
    const symKind = sym ? Number(sym.Kind) : -1;
    if (env.has(name) && symKind !== 9) {
      const v = env.get(name);
      if ('scalar' in v) return v.scalar;
      return { table: v.table };
    }
    if (row && name in row) return row[name];
    if (row && symKind === 9) return null; // a column of the schema absent from this record
    throw new EvalError(`unknown name ${name}`);
  }

  listValues(exprList, row, env) {
    const out = [];
    for (const e of listItems(exprList.Expressions)) {
      const v = this.scalar(e, row, env);
      if (v && typeof v === 'object' && v.table) {
        const first = v.table.columns[0].name;
        for (const r of v.table.rows) out.push(r[first]);
      } else if (Array.isArray(v)) {
        out.push(...v);
      } else {
        out.push(v);
      }
    }
    return out;
  }

  inExpr(k, node, row, env) {
    const l = this.scalar(node.Left, row, env);
    const vals = this.listValues(node.Right, row, env);
    const insensitive = k === 'InCsExpression' || k === 'NotInCsExpression'; // in~, !in~
    let found;
    if (insensitive) { const x = ci(l); found = vals.some((v) => ci(v) === x); }
    else found = vals.some((v) => eq(l, v) === true);
    return k.startsWith('Not') ? !found : found;
  }

  binary(k, node, row, env) {
    const l = this.scalar(node.Left, row, env);
    const r = this.scalar(node.Right, row, env);
    switch (k) {
      case 'EqualExpression': return eq(l, r);
      case 'NotEqualExpression': { const e = eq(l, r); return e === null ? null : !e; }
      case 'EqualTildeExpression': return ci(l) === ci(r);
      case 'BangTildeExpression': return ci(l) !== ci(r);
      case 'LessThanExpression': { const c = cmp(l, r); return c === null ? null : c < 0; }
      case 'LessThanOrEqualExpression': { const c = cmp(l, r); return c === null ? null : c <= 0; }
      case 'GreaterThanExpression': { const c = cmp(l, r); return c === null ? null : c > 0; }
      case 'GreaterThanOrEqualExpression': { const c = cmp(l, r); return c === null ? null : c >= 0; }
      case 'HasExpression': return has(l, r, false);
      case 'NotHasExpression': return !has(l, r, false);
      case 'HasCsExpression': return has(l, r, true);
      case 'NotHasCsExpression': return !has(l, r, true);
      case 'HasPrefixExpression': return hasPrefix(l, r, false);
      case 'NotHasPrefixExpression': return !hasPrefix(l, r, false);
      case 'HasPrefixCsExpression': return hasPrefix(l, r, true);
      case 'NotHasPrefixCsExpression': return !hasPrefix(l, r, true);
      case 'HasSuffixExpression': return hasSuffix(l, r, false);
      case 'NotHasSuffixExpression': return !hasSuffix(l, r, false);
      case 'HasSuffixCsExpression': return hasSuffix(l, r, true);
      case 'NotHasSuffixCsExpression': return !hasSuffix(l, r, true);
      case 'ContainsExpression': return ci(l).includes(ci(r));
      case 'NotContainsExpression': return !ci(l).includes(ci(r));
      case 'ContainsCsExpression': return toStr(l).includes(toStr(r));
      case 'NotContainsCsExpression': return !toStr(l).includes(toStr(r));
      case 'StartsWithExpression': return ci(l).startsWith(ci(r));
      case 'NotStartsWithExpression': return !ci(l).startsWith(ci(r));
      case 'StartsWithCsExpression': return toStr(l).startsWith(toStr(r));
      case 'NotStartsWithCsExpression': return !toStr(l).startsWith(toStr(r));
      case 'EndsWithExpression': return ci(l).endsWith(ci(r));
      case 'NotEndsWithExpression': return !ci(l).endsWith(ci(r));
      case 'EndsWithCsExpression': return toStr(l).endsWith(toStr(r));
      case 'NotEndsWithCsExpression': return !toStr(l).endsWith(toStr(r));
      case 'MatchesRegexExpression': return new RegExp(toStr(r)).test(toStr(l));
      case 'AddExpression': return arith('+', l, r);
      case 'SubtractExpression': return arith('-', l, r);
      case 'MultiplyExpression': return arith('*', l, r);
      case 'DivideExpression': return arith('/', l, r);
      case 'ModuloExpression': return arith('%', l, r);
      default: throw new Unsupported(`operator ${k}`);
    }
  }

  call(node, row, env) {
    const fn = node.Name.SimpleName;
    const argNodes = listItems(node.ArgumentList.Expressions);
    const a = () => argNodes.map((e) => this.scalar(e, row, env));
    switch (fn) {
      case 'tostring': return toStr(a()[0]);
      case 'toint': case 'tolong': { const v = a()[0]; return typeof v === 'object' && v !== null && !(v instanceof DT) && !(v instanceof TS) ? null : toNum(v, true); }
      case 'toreal': case 'todouble': case 'todecimal': return toNum(a()[0], false);
      case 'tobool': case 'toboolean': return toBool(a()[0]);
      case 'todatetime': { const v = a()[0]; return v instanceof DT ? v : parseDate(toStr(v)); }
      case 'todynamic': case 'parse_json': { const v = a()[0]; if (typeof v !== 'string') return v; try { return JSON.parse(v); } catch (e) { return v; } }
      case 'tolower': return toStr(a()[0]).toLowerCase();
      case 'toupper': return toStr(a()[0]).toUpperCase();
      case 'strlen': return toStr(a()[0]).length;
      case 'strcat': return a().map(toStr).join('');
      case 'trim': { const [re, s] = a(); return toStr(s).replace(new RegExp(`^(${toStr(re)})+|(${toStr(re)})+$`, 'g'), ''); }
      case 'substring': { const [s, st, len] = a(); return len === undefined ? toStr(s).substr(toNum(st, true)) : toStr(s).substr(toNum(st, true), toNum(len, true)); }
      case 'indexof': { const [s, n] = a(); return toStr(s).indexOf(toStr(n)); }
      case 'split': { const [s, d, i] = a(); const parts = toStr(s).split(toStr(d)); return i === undefined ? parts : (parts[toNum(i, true)] === undefined ? [] : [parts[toNum(i, true)]]); }
      case 'replace_string': { const [s, f, t] = a(); return toStr(s).split(toStr(f)).join(toStr(t)); }
      case 'extract': {
        const [re, grp, s] = a();
        const m = new RegExp(toStr(re)).exec(toStr(s));
        return m ? (m[toNum(grp, true)] === undefined ? '' : m[toNum(grp, true)]) : '';
      }
      case 'isempty': { const v = a()[0]; return isNullish(v) || v === ''; }
      case 'isnotempty': { const v = a()[0]; return !(isNullish(v) || v === ''); }
      case 'isnull': return isNullish(a()[0]);
      case 'isnotnull': return !isNullish(a()[0]);
      case 'not': { const b = toBool(a()[0]); return b === null ? null : !b; }
      case 'iff': case 'iif': { const c = toBool(this.scalar(argNodes[0], row, env)); return this.scalar(argNodes[c === true ? 1 : 2], row, env); }
      case 'case': {
        for (let i = 0; i + 1 < argNodes.length; i += 2) {
          if (toBool(this.scalar(argNodes[i], row, env)) === true) return this.scalar(argNodes[i + 1], row, env);
        }
        return this.scalar(argNodes[argNodes.length - 1], row, env);
      }
      case 'coalesce': { for (const v of a()) if (!isNullish(v) && v !== '') return v; return null; }
      case 'array_length': { const v = a()[0]; return Array.isArray(v) ? v.length : null; }
      case 'array_index_of': { const [arr, v] = a(); return Array.isArray(arr) ? arr.findIndex((x) => eq(x, v) === true) : null; }
      case 'set_has_element': { const [arr, v] = a(); return Array.isArray(arr) ? arr.some((x) => eq(x, v) === true) : null; }
      case 'bag_keys': { const v = a()[0]; return v && typeof v === 'object' && !Array.isArray(v) ? Object.keys(v) : null; }
      case 'now': { const [off] = a(); return new DT(this.now.ms + (off instanceof TS ? off.ms : 0)); }
      case 'ago': { const [s] = a(); return s instanceof TS ? new DT(this.now.ms - s.ms) : null; }
      case 'bin': case 'floor': {
        const [v, s] = a();
        if (isNullish(v) || isNullish(s)) return null;
        if (v instanceof DT) { const span = s instanceof TS ? s.ms : toNum(s); return new DT(Math.floor(v.ms / span) * span); }
        if (v instanceof TS) { const span = s instanceof TS ? s.ms : toNum(s); return new TS(Math.floor(v.ms / span) * span); }
        const n = toNum(v); const span = toNum(s);
        return n === null || !span ? null : Math.floor(n / span) * span;
      }
      case 'startofday': { const v = a()[0]; return v instanceof DT ? new DT(Math.floor(v.ms / 86400000) * 86400000) : null; }
      case 'datetime_diff': {
        const [part, x, y] = a();
        if (!(x instanceof DT) || !(y instanceof DT)) return null;
        const per = { second: 1000, minute: 60000, hour: 3600000, day: 86400000 }[toStr(part).toLowerCase()];
        if (!per) throw new Unsupported(`datetime_diff part ${toStr(part)}`);
        return Math.trunc((x.ms - y.ms) / per);
      }
      case 'totimespan': { const v = a()[0]; return v instanceof TS ? v : null; }
      default:
        throw new Unsupported(`function ${fn}()`);
    }
  }
}

function dyn(v) {
  if (v instanceof DT) return fmtDate(v);
  if (v instanceof TS) return fmtSpan(v);
  return v;
}

function keyOf(v) {
  if (v instanceof DT) return ['dt', v.ms];
  if (v instanceof TS) return ['ts', v.ms];
  return v === undefined ? null : v;
}

function member(base, key) {
  if (isNullish(base)) return null;
  let b = base;
  if (typeof b === 'string') {
    const s = b.trim();
    if (s.startsWith('{') || s.startsWith('[')) { try { b = JSON.parse(s); } catch (e) { return null; } } else return null;
  }
  if (typeof b !== 'object') return null;
  if (Array.isArray(b)) {
    const i = toNum(key, true);
    if (i === null) return null;
    const v = b[i < 0 ? b.length + i : i];
    return v === undefined ? null : v;
  }
  const v = b[toStr(key)];
  return v === undefined ? null : v;
}

function arith(opc, l, r) {
  if (isNullish(l) || isNullish(r)) return null;
  if (l instanceof DT && r instanceof TS) return new DT(opc === '+' ? l.ms + r.ms : l.ms - r.ms);
  if (l instanceof DT && r instanceof DT && opc === '-') return new TS(l.ms - r.ms);
  if (l instanceof TS && r instanceof TS) return new TS(opc === '+' ? l.ms + r.ms : l.ms - r.ms);
  const x = toNum(l); const y = toNum(r);
  if (x === null || y === null) return null;
  switch (opc) {
    case '+': return x + y;
    case '-': return x - y;
    case '*': return x * y;
    case '/': return y === 0 ? null : (Number.isInteger(x) && Number.isInteger(y) ? Math.trunc(x / y) : x / y);
    case '%': return y === 0 ? null : x % y;
    default: return null;
  }
}

module.exports = { Evaluator, Unsupported, EvalError, DT, TS, coerce, parseDate, toStr };
