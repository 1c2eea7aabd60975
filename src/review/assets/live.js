// Live queue over server-sent events, and countdowns that tick. No build step, no framework.
(() => {
  const rows = document.getElementById('queue-rows');
  const count = document.getElementById('queue-count');
  const here = document.body.dataset.action;
  async function refreshQueue() {
    const res = await fetch('/review/queue/rows', { credentials: 'same-origin' });
    if (!res.ok) return;
    rows.innerHTML = await res.text();
    if (count) count.textContent = String(rows.querySelectorAll('tr[data-id]').length);
    tick();
  }
  const events = new EventSource('/review/events');
  events.onopen = () => {
    document.body.dataset.live = 'open';
  };
  events.onerror = () => {
    document.body.dataset.live = 'reconnecting';
  };
  events.addEventListener('change', (e) => {
    const change = JSON.parse(e.data);
    if (rows) void refreshQueue();
    if (here && change.id === here) document.getElementById('changed').hidden = false;
  });
  function tick() {
    for (const el of document.querySelectorAll('[data-expires]')) {
      const ms = new Date(el.dataset.expires).getTime() - Date.now();
      const m = Math.floor(ms / 60000);
      el.textContent =
        ms <= 0
          ? 'expired'
          : m < 1
            ? `${Math.floor(ms / 1000)}s left`
            : m < 60
              ? `${m}m left`
              : m < 2880
                ? `${Math.floor(m / 60)}h ${m % 60}m left`
                : `${Math.floor(m / 1440)}d ${Math.floor(m / 60) % 24}h left`;
      el.classList.toggle('urgent', ms < 3600000);
    }
  }
  setInterval(tick, 1000);
})();
