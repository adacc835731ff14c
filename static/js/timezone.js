// Tells the server the reader's time zone (webapp/core/timezones.py), so pages show times in it.
(() => {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!zone) return;
  const cookie = "tz=" + encodeURIComponent(zone);
  if (!document.cookie.split("; ").includes(cookie)) {
    document.cookie = cookie + "; path=/; max-age=31536000; SameSite=Lax";
  }
})();
