/** Adds a cache-busting query to playlist requests (see bypassPlaylistCache). */
export function playlistUrl(url: string, now = Date.now()): string {
  if (!/\.m3u8(\?|#|$)/.test(url)) return url;
  return url + (url.includes('?') ? '&' : '?') + '_rill=' + now.toString(36);
}

/**
 * Rill's playlists say `max-age=0, s-maxage=1`, but a proxy or origin that serves them with
 * a browser-cacheable lifetime (older nodes used `max-age=1`) would hand a reload a playlist
 * up to a second old, delaying every new segment. A query that changes per request skips
 * the browser cache; a CDN that leaves query strings out of its cache key (Rill's
 * CloudFront policies do) still caches.
 */
export function bypassPlaylistCache(xhr: XMLHttpRequest, url: string): void {
  const fresh = playlistUrl(url);
  if (fresh !== url) xhr.open('GET', fresh, true);
}

/**
 * A members-only stream's media URL with its signed grant (`access.query` from
 * `GET /api/streams/{id}/hls`): every playlist and segment request carries it, since the
 * playlists' relative URIs do not. A URL that already has a grant keeps it.
 */
export function withGrant(url: string, grantQuery: string | null | undefined): string {
  if (!grantQuery || /[?&]Signature=/.test(url)) return url;
  const hash = url.indexOf('#');
  const [base, frag] = hash < 0 ? [url, ''] : [url.slice(0, hash), url.slice(hash)];
  return base + (base.includes('?') ? '&' : '?') + grantQuery + frag;
}
