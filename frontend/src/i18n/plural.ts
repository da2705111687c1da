/**
 * Plural-aware templates: a block `{n, plural, one {# message} few {# messages} other {…}}`
 * (the ICU MessageFormat plural syntax, nothing else of it) picks the form Intl.PluralRules gives
 * for the locale and the number, `#` standing for the number. Russian needs one/few/many
 * ("1 сообщение, 2 сообщения, 5 сообщений"), English one/other, Chinese other only.
 */

export type Vars = Record<string, string | number>;

const rules = new Map<string, Intl.PluralRules>();

function ruleFor(locale: string): Intl.PluralRules {
  let r = rules.get(locale);
  if (!r) {
    r = new Intl.PluralRules(locale);
    rules.set(locale, r);
  }
  return r;
}

const BLOCK = /\{(\w+),\s*plural,/g;

export interface PluralBlock {
  name: string;
  /** Form name (one, few, many, other, or =N) → its text. */
  forms: Map<string, string>;
  start: number;
  end: number;
}

/** The plural blocks of a template, in order; throws on a malformed one (caught by tests). */
export function pluralBlocks(template: string): PluralBlock[] {
  const out: PluralBlock[] = [];
  for (const m of template.matchAll(BLOCK)) {
    const name = m[1] ?? "";
    const forms = new Map<string, string>();
    let i = m.index + m[0].length;
    for (;;) {
      while (template[i] === " ") i++;
      if (template[i] === "}") break;
      const key = /^(=\d+|\w+)\s*\{/.exec(template.slice(i));
      if (!key?.[1]) throw new Error(`bad plural block for {${name}} in "${template}"`);
      i += key[0].length;
      let depth = 1;
      const from = i;
      while (i < template.length && depth > 0) {
        if (template[i] === "{") depth++;
        else if (template[i] === "}") depth--;
        i++;
      }
      if (depth > 0) throw new Error(`unclosed plural form in "${template}"`);
      forms.set(key[1], template.slice(from, i - 1));
    }
    out.push({ name, forms, start: m.index, end: i + 1 });
  }
  return out;
}

/** The template with each plural block replaced by the form for its number. */
export function formatPlurals(template: string, locale: string, vars: Vars): string {
  const blocks = pluralBlocks(template);
  if (!blocks.length) return template;
  let out = "";
  let at = 0;
  for (const b of blocks) {
    const raw = vars[b.name];
    out += template.slice(at, b.start);
    at = b.end;
    if (raw === undefined) {
      out += template.slice(b.start, b.end);
      continue;
    }
    const n = typeof raw === "number" ? raw : Number(raw.replace(/[^\d.-]/g, ""));
    const form = b.forms.get(`=${n}`) ?? b.forms.get(ruleFor(locale).select(n)) ?? b.forms.get("other") ?? "";
    out += form.replace(/#/g, String(raw));
  }
  return out + template.slice(at);
}
