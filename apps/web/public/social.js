'use strict';
// The seed's social example ("社交媒体实时更新"). Deviations from the seed:
// - The seed builds posts and comments with innerHTML from the event's data; here author,
//   content and comment text are written with textContent (markup in a post shows as text).
// - The seed's newLike and newComment write to #post-<postId>-likes / #post-<postId>-comments but
//   its posts have no such elements; here each post has them (posts carry `id`).
// - A page sees only what is published after it opened: a like or comment on an older post would
//   find no element (the seed's code would throw); here the post is added as "posted earlier".
//   A newPost whose id is already shown (replayed after a reset) fills it in instead of adding
//   it twice.
const socialEvents = streamcast.track(new EventSource('/api/social/updates'));

function flash(element) {
  element.classList.remove('flash');
  void element.offsetWidth; // restart the animation
  element.classList.add('flash');
}

/** The post's element, created (at the end: it is older than what is shown) when missing. */
function postElementFor(id) {
  const existing = document.getElementById(`post-${id}`);
  if (existing) return existing;
  const postElement = document.createElement('article');
  postElement.className = 'social-post card';
  postElement.id = `post-${id}`;
  const author = document.createElement('h4');
  author.className = 'post-author';
  author.textContent = 'Earlier post';
  const content = document.createElement('p');
  content.className = 'post-content muted';
  content.textContent = 'Posted before this page opened.';
  const meta = document.createElement('div');
  meta.className = 'post-meta';
  const time = document.createElement('small');
  time.className = 'post-time';
  const likes = document.createElement('span');
  likes.className = 'likes';
  likes.id = `post-${id}-likes`;
  likes.textContent = '点赞数: 0';
  meta.append(time, likes);
  const comments = document.createElement('div');
  comments.className = 'comments';
  comments.id = `post-${id}-comments`;
  postElement.append(author, content, meta, comments);
  document.getElementById('posts-container').append(postElement);
  document.getElementById('posts-empty').hidden = true;
  return postElement;
}

socialEvents.addEventListener('newPost', (event) => {
  const post = JSON.parse(event.data);
  const postElement = postElementFor(post.id);
  postElement.querySelector('.post-author').textContent = post.author;
  const content = postElement.querySelector('.post-content');
  content.textContent = post.content;
  content.classList.remove('muted');
  postElement.querySelector('.post-time').textContent = new Date(post.timestamp).toLocaleString();
  document.getElementById('posts-container').prepend(postElement);
  flash(postElement);
});

socialEvents.addEventListener('newLike', (event) => {
  const like = JSON.parse(event.data);
  postElementFor(like.postId);
  const likes = document.getElementById(`post-${like.postId}-likes`);
  likes.textContent = `点赞数: ${like.count}`;
  flash(likes);
});

socialEvents.addEventListener('newComment', (event) => {
  const comment = JSON.parse(event.data);
  postElementFor(comment.postId);
  const commentElement = document.createElement('div');
  commentElement.className = 'comment';
  const author = document.createElement('strong');
  author.textContent = `${comment.author}:`;
  const text = document.createElement('span');
  text.textContent = ` ${comment.text}`;
  commentElement.append(author, text);
  document.getElementById(`post-${comment.postId}-comments`).appendChild(commentElement);
  flash(commentElement);
});
