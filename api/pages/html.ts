/**
 * HTML for the server-rendered pages: a tagged template that escapes every value unless it
 * is itself built with `html`, so nothing a debtor or a processor sent can become markup.
 */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const escapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => escapes[c]!);
}

function render(value: unknown): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  return new Html(strings.reduce((out, s, i) => out + s + (i < values.length ? render(values[i]) : ''), ''));
}

const styles = `
  :root { color-scheme: light; --ink: #1b1f24; --muted: #57606a; --line: #d0d7de; --accent: #0b5cad; --bad: #a40e26; --good: #116329; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: var(--ink); background: #f6f8fa; }
  header { background: #fff; border-bottom: 1px solid var(--line); padding: .75rem 1.5rem; display: flex; gap: 1.5rem; align-items: center; flex-wrap: wrap; }
  header strong { font-size: 1.1rem; }
  header nav { display: flex; gap: 1rem; }
  header form { margin-left: auto; }
  main { max-width: 72rem; margin: 0 auto; padding: 1.5rem; }
  a { color: var(--accent); }
  a:focus, button:focus, input:focus, textarea:focus { outline: 3px solid #f0b400; outline-offset: 2px; }
  h1 { font-size: 1.5rem; margin: 0 0 1rem; }
  h2 { font-size: 1.15rem; margin: 0 0 .5rem; }
  .card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 1rem 1.25rem; margin-bottom: 1rem; }
  .muted { color: var(--muted); }
  .notice { border-left: 4px solid var(--good); background: #dafbe1; padding: .75rem 1rem; margin-bottom: 1rem; }
  .error { border-left: 4px solid var(--bad); background: #ffebe9; padding: .75rem 1rem; margin-bottom: 1rem; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: .5rem 0; }
  dt { color: var(--muted); }
  dd { margin: 0; }
  table { border-collapse: collapse; width: 100%; background: #fff; }
  th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
  textarea, input[type=password], input[type=text] { width: 100%; font: inherit; padding: .4rem; border: 1px solid var(--line); border-radius: 4px; }
  button { font: inherit; padding: .4rem 1rem; border-radius: 4px; border: 1px solid var(--line); background: #fff; cursor: pointer; }
  button.approve { background: var(--good); color: #fff; border-color: var(--good); }
  button.reject { background: var(--bad); color: #fff; border-color: var(--bad); }
  .actions { display: flex; gap: .5rem; margin-top: .5rem; }
  details pre { white-space: pre-wrap; background: #f6f8fa; padding: .5rem; }
`;

export type PageUser = { name: string; role: string; csrfToken: string };

/** The frame of every page: navigation for a signed-in user, one <main>, no client-side script. */
export function layout(input: { title: string; user?: PageUser; body: Html }): string {
  const { title, user, body } = input;
  return `<!doctype html>${html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Arrears</title>
<style>${new Html(styles)}</style>
</head>
<body>
<header>
  <strong>Arrears</strong>
  ${
    user
      ? html`<nav aria-label="Main">
      <a href="/ui/approvals">Approvals</a>
      <a href="/ui/operations">Operations</a>
      <a href="/ui/calls">Calls</a>
    </nav>
    <form method="post" action="/ui/logout">
      <input type="hidden" name="csrf" value="${user.csrfToken}">
      <span class="muted">${user.name} (${user.role})</span>
      <button type="submit">Sign out</button>
    </form>`
      : ''
  }
</header>
<main>
${body}
</main>
</body>
</html>`}`;
}
