/**
 * rehype plugin: highlight fenced code that names its language, with ONE shared lowlight
 * instance. (rehype-highlight builds a new instance, registering ~40 grammars, every time a
 * processor is made — i.e. on every Markdown render, once per streaming frame.)
 * No language guessing: it is slow and often wrong.
 */

import type { Element, Root } from "hast";
import { toText } from "hast-util-to-text";
import { common, createLowlight } from "lowlight";
import { visit } from "unist-util-visit";

let shared: ReturnType<typeof createLowlight> | null = null;

function lowlight(): ReturnType<typeof createLowlight> {
  shared ??= createLowlight(common);
  return shared;
}

function classesOf(node: Element): string[] {
  const cls = node.properties.className;
  return Array.isArray(cls) ? cls.map(String) : [];
}

export default function rehypeHighlightShared() {
  return (tree: Root): void => {
    visit(tree, "element", (node, _index, parent) => {
      if (node.tagName !== "code" || parent?.type !== "element" || parent.tagName !== "pre") return;
      const classes = classesOf(node);
      const lang = classes.find((c) => c.startsWith("language-"))?.slice(9);
      if (!lang || lang === "math") return;
      const ll = lowlight();
      if (!ll.registered(lang)) return;
      try {
        const result = ll.highlight(lang, toText(node, { whitespace: "pre" }), { prefix: "hljs-" });
        node.children = result.children as Element["children"];
        node.properties.className = [...classes, "hljs"];
      } catch {
        // leave it plain
      }
    });
  };
}
