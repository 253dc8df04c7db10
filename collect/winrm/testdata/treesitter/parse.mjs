// Parses PowerShell files with tree-sitter-powershell and prints each file's syntax tree
// as JSON on stdout: {"file": ..., "root": node}, one document per line; a node is
// {"t": type, "r": row (0-based), "c": column, "x": text (leaves and short nodes),
//  "e": true on ERROR nodes, "m": true on MISSING nodes, "k": [children]}.
// Run as: node --liftoff-only parse.mjs FILE... (see treesitter_test.go for why).
// Used by collect/winrm/treesitter_test.go; installed by .ci/run (npm ci --ignore-scripts
// here). The grammar is the WASM build tree-sitter-powershell ships, run by
// web-tree-sitter: no native addon to compile.
import { Parser, Language } from 'web-tree-sitter';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

await Parser.init();
const wasm = fileURLToPath(new URL('node_modules/tree-sitter-powershell/tree-sitter-powershell.wasm', import.meta.url));
const parser = new Parser();
parser.setLanguage(await Language.load(wasm));

// dump walks the tree with a cursor, never materialising Node objects (in
// web-tree-sitter each costs a round trip into WASM), and slices texts from the source.
function dump(tree, src) {
  const cur = tree.walk();
  const visit = () => {
    const o = { t: cur.nodeType, r: cur.startPosition.row, c: cur.startPosition.column };
    const a = cur.startIndex, b = cur.endIndex;
    if (cur.nodeType === 'ERROR') o.e = true;
    if (cur.nodeIsMissing) o.m = true;
    if (cur.gotoFirstChild()) {
      o.k = [];
      do { o.k.push(visit()); } while (cur.gotoNextSibling());
      cur.gotoParent();
      if (b - a <= 200) o.x = src.slice(a, b);
    } else {
      o.x = src.slice(a, b);
    }
    return o;
  };
  return visit();
}

let out = '';
for (const file of process.argv.slice(2)) {
  const src = fs.readFileSync(file, 'utf8');
  const tree = parser.parse(src);
  out += JSON.stringify({ file, root: dump(tree, src) }) + '\n';
  tree.delete();
}
// Exit once written: left to itself, node lingers for minutes after web-tree-sitter's
// work is done (measured here: 2.5 min for one 15 KB script parsed in 0.2 s).
process.stdout.write(out, () => process.exit(0));
