'use strict';
// The seed's live match example ("体育比分实时更新"). Deviations from the seed:
// - The seed builds each match event with innerHTML from the event's data; here the minute, type
//   and player are written with textContent (a player name with markup shows as text).
// - The match is chosen on the page (123, 456, 789, or ?match=<id>) instead of fixed at 123.
// - The minute is shown with the ' that the seed puts on match events.
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const select = document.getElementById('match-select');
let matchEvents = null;

const TYPE_LABELS = {
  goal: 'Goal',
  'yellow-card': 'Yellow card',
  'red-card': 'Red card',
  substitution: 'Substitution',
};

function connect(matchId) {
  if (matchEvents) {
    matchEvents.close();
    streamcast.untrack(matchEvents);
  }
  document.getElementById('home-score').textContent = '–';
  document.getElementById('away-score').textContent = '–';
  document.getElementById('match-status').textContent = 'waiting for the next update…';
  document.getElementById('match-time').textContent = '';
  document.getElementById('match-events').replaceChildren();
  document.getElementById('match-events-empty').hidden = false;

  matchEvents = streamcast.track(
    new EventSource(`/api/match/${encodeURIComponent(matchId)}/live-updates`),
  );

  matchEvents.addEventListener('scoreUpdate', (event) => {
    const data = JSON.parse(event.data);
    document.getElementById('home-score').textContent = data.homeScore;
    document.getElementById('away-score').textContent = data.awayScore;
  });

  matchEvents.addEventListener('matchStatus', (event) => {
    const data = JSON.parse(event.data);
    document.getElementById('match-status').textContent = data.status.replace(/-/g, ' ');
    document.getElementById('match-time').textContent = `${data.time}'`;
  });

  matchEvents.addEventListener('matchEvent', (event) => {
    const data = JSON.parse(event.data);
    const eventList = document.getElementById('match-events');
    const eventItem = document.createElement('div');
    const time = document.createElement('strong');
    time.textContent = `${data.time}'`;
    const type = document.createElement('span');
    type.className = `event-type ${data.type}`;
    type.textContent = TYPE_LABELS[data.type] || data.type;
    const player = document.createElement('span');
    player.textContent = data.player;
    eventItem.append(time, type, player);
    eventList.prepend(eventItem);
    document.getElementById('match-events-empty').hidden = true;
  });
}

const requested = new URLSearchParams(location.search).get('match');
if (requested && ID_RE.test(requested)) {
  if (![...select.options].some((o) => o.value === requested))
    select.add(new Option(requested, requested));
  select.value = requested;
}
select.addEventListener('change', () => connect(select.value));
connect(select.value);
