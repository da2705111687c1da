/**
 * The heavy half of the Markdown pipeline — KaTeX (with its stylesheet and fonts) and the
 * highlight.js grammars — in a chunk of its own, loaded after the page is up (Markdown.tsx
 * `loadRich`). Until it arrives, math shows as its TeX source and code unhighlighted.
 */

import "katex/dist/katex.min.css";
import rehypeKatex from "rehype-katex";
import type { Options } from "react-markdown";
import rehypeHighlightShared from "./highlight";

export const richRehypePlugins: NonNullable<Options["rehypePlugins"]> = [
  [rehypeKatex, { strict: "ignore", trust: false, maxSize: 50, maxExpand: 500, output: "htmlAndMathml" }],
  rehypeHighlightShared,
];
