/** A value as an error message shows it: JSON, cut to 80 characters, with its length when cut. */
export function shown(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  return text.length <= 80 ? text : `${text.slice(0, 80)}… (${typeof value === 'string' ? `${value.length} characters` : `${text.length} characters as JSON`})`;
}
