/**
 * remark plugin: raw HTML in model output is shown as the text it is ("use a <div> here"),
 * never parsed into elements.
 */

interface Node {
  type: string;
  value?: string;
  children?: Node[];
}

function walk(node: Node): void {
  if (node.type === "html") node.type = "text";
  if (node.children) for (const child of node.children) walk(child);
}

export default function remarkHtmlAsText() {
  return (tree: Node): void => {
    walk(tree);
  };
}
