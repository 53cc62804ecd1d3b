/** Adds a cache-busting query to playlist requests (see bypassPlaylistCache). */
export function playlistUrl(url: string, now = Date.now()): string {
  if (!/\.m3u8(\?|#|$)/.test(url)) return url;
  return url + (url.includes('?') ? '&' : '?') + '_rill=' + now.toString(36);
}

/**
 * Live playlists are served with `Cache-Control: max-age=1`: the browser may answer a reload
 * from its cache with a playlist up to 1 s old, which delays every new segment. A query that
 * changes per request skips the browser cache (a CDN that ignores query strings still caches).
 */
export function bypassPlaylistCache(xhr: XMLHttpRequest, url: string): void {
  const fresh = playlistUrl(url);
  if (fresh !== url) xhr.open('GET', fresh, true);
}
