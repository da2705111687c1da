/**
 * Model output → React elements, safely: Markdown (GFM) is parsed to a syntax tree, raw HTML is
 * shown as text (never turned into elements), the tree is sanitised (GitHub's rules) before KaTeX and
 * highlight.js add their own markup, and links keep only http(s)/mailto targets.
 */

import type { Element } from "hast";
import {
  memo,
  useRef,
  useState,
  useSyncExternalStore,
  type ComponentProps,
  type ReactElement,
  type ReactNode,
} from "react";
import renderMarkdown, { type Components, type Options } from "react-markdown";
import rehypeSanitize from "rehype-sanitize";
import remarkGfm from "remark-gfm";
import remarkMath from "remark-math";
import { useT } from "../i18n";
import { copyText } from "../lib/clipboard";
import remarkHtmlAsText from "../lib/htmlAsText";
import { splitBlocks } from "../lib/blocks";
import { prepareMath } from "../lib/math";
import { safeUrl } from "../lib/safeUrl";

const remarkPlugins: Options["remarkPlugins"] = [
  remarkGfm,
  remarkHtmlAsText,
  [remarkMath, { singleDollarTextMath: false }],
];

let rehypePlugins: NonNullable<Options["rehypePlugins"]> = [rehypeSanitize];

/** Bumped when KaTeX and highlighting arrive: blocks rendered without them render again. */
let richVersion = 0;
let richLoad: Promise<void> | null = null;
const richListeners = new Set<() => void>();

/** Load KaTeX and highlighting (once); resolves when rendering uses them. */
export function loadRich(): Promise<void> {
  richLoad ??= import("../lib/rich").then(({ richRehypePlugins }) => {
    rehypePlugins = [rehypeSanitize, ...richRehypePlugins];
    richVersion = 1;
    rendered.clear();
    for (const l of richListeners) l();
  });
  return richLoad;
}

const readRichVersion = (): number => richVersion;

function subscribeRich(listener: () => void): () => void {
  richListeners.add(listener);
  return () => {
    richListeners.delete(listener);
  };
}

const NEEDS_RICH = /```|~~~|\$|\\[([]|^ {4}/m;

/** The language named on a fenced block (```py), read from the sanitised syntax tree. */
function languageOf(node: Element | undefined): string {
  const code = node?.children[0];
  if (code?.type !== "element") return "";
  const cls = code.properties.className;
  const names = Array.isArray(cls) ? cls.map(String) : typeof cls === "string" ? [cls] : [];
  for (const name of names) if (name.startsWith("language-")) return name.slice(9);
  return "";
}

function CodeBlock({ children, node, ...rest }: ComponentProps<"pre"> & { node?: Element }): ReactNode {
  const t = useT();
  const ref = useRef<HTMLPreElement>(null);
  const [copied, setCopied] = useState(false);
  const lang = languageOf(node);
  return (
    <div className="code-block">
      <div className="code-head">
        <span className="code-lang">{lang}</span>
        <button
          type="button"
          className="code-copy"
          aria-label={t("copyCode")}
          onClick={() => {
            void copyText(ref.current?.innerText ?? "").then((ok) => {
              if (!ok) return;
              setCopied(true);
              setTimeout(() => {
                setCopied(false);
              }, 1500);
            });
          }}
        >
          {copied ? t("copied") : t("copy")}
        </button>
      </div>
      <pre ref={ref} {...rest}>
        {children}
      </pre>
    </div>
  );
}

function Link({ href, children, node: _node, ...rest }: ComponentProps<"a"> & { node?: unknown }): ReactNode {
  const target = href ? safeUrl(href) : null;
  if (!target) return <span className="link-removed">{children}</span>;
  if (target.startsWith("#")) return <a href={target} {...rest}>{children}</a>;
  return (
    <a href={target} target="_blank" rel="noopener noreferrer nofollow" {...rest}>
      {children}
    </a>
  );
}

/** Images are not loaded from model output (tracking, and the CSP blocks them): show a link. */
function Image({ src, alt }: ComponentProps<"img"> & { node?: unknown }): ReactNode {
  const target = typeof src === "string" ? safeUrl(src) : null;
  const label = `[${alt?.trim() || "image"}]`;
  if (!target) return <span className="image-removed">{label}</span>;
  return (
    <a href={target} target="_blank" rel="noopener noreferrer nofollow">
      {label}
    </a>
  );
}

function Table({ node: _node, ...rest }: ComponentProps<"table"> & { node?: unknown }): ReactNode {
  return (
    <div className="table-wrap">
      <table {...rest} />
    </div>
  );
}

const components: Components = { pre: CodeBlock, a: Link, img: Image, table: Table };

function transformUrl(url: string): string | null {
  return safeUrl(url);
}

/** Rendered blocks by their text, most recently used last: each block is parsed once. */
const rendered = new Map<string, ReactElement>();
const CACHE_BLOCKS = 3000;

function renderBlock(block: string): ReactElement {
  const hit = rendered.get(block);
  if (hit) {
    rendered.delete(block);
    rendered.set(block, hit);
    return hit;
  }
  // react-markdown's synchronous renderer is a plain function of its options (no hooks).
  const element = renderMarkdown({
    children: prepareMath(block),
    remarkPlugins,
    rehypePlugins,
    components,
    urlTransform: transformUrl,
  });
  rendered.set(block, element);
  if (rendered.size > CACHE_BLOCKS) {
    const oldest = rendered.keys().next().value;
    if (oldest !== undefined) rendered.delete(oldest);
  }
  return element;
}

/**
 * Pay the one-time costs (highlight.js grammars, KaTeX, the Markdown pipeline) while the page is
 * idle, not when the first long chat opens.
 */
export function warmUpMarkdown(): void {
  void loadRich().then(() => renderBlock("`warm` **up** $x^2$\n\n```js\nconst a = 1;\n```"));
}

const Block = memo(function Block({ text }: { text: string }) {
  const version = useSyncExternalStore(subscribeRich, readRichVersion, readRichVersion);
  if (version === 0 && NEEDS_RICH.test(text)) void loadRich();
  return renderBlock(text);
});

/**
 * Markdown, block by block: unchanged blocks are neither re-parsed nor re-rendered, so a
 * streaming answer costs one block per frame, not the whole answer.
 */
export const Markdown = memo(function Markdown({ text }: { text: string }) {
  const blocks = splitBlocks(text);
  return (
    <div className="markdown">
      {blocks.map((block, i) => (
        // Blocks only ever append or grow at the end: the index is a stable key.
        <Block key={i} text={block} />
      ))}
    </div>
  );
});
