'use strict';
// The seed's blog example ("2. 实时博客更新"). Deviations from the seed:
// - The seed builds each post with innerHTML from the event's data; here every field is written
//   with textContent, so a title or excerpt containing markup is shown as text, never run.
// - The seed's postUpdate looks the post up by id `post-${id}` but never gives the new element
//   that id; here it does.
// - A page sees only what is published after it opened: an edit of an older post would find no
//   element and be dropped by the seed's code; here it adds the post as "published earlier"
//   with its new text. A newPost whose id is already shown (replayed after a reset) updates it
//   instead of adding it twice.
const blogEvents = streamcast.track(new EventSource('/api/blog/updates'));

function createPost(id) {
  const postElement = document.createElement('article');
  postElement.classList.add('blog-post', 'card');
  postElement.id = `post-${id}`;
  const title = document.createElement('h3');
  title.className = 'post-title';
  const content = document.createElement('p');
  content.className = 'post-content';
  const meta = document.createElement('small');
  meta.className = 'post-meta';
  postElement.append(title, content, meta);
  document.getElementById('blog-empty').hidden = true;
  return postElement;
}

function flash(element) {
  element.classList.remove('flash');
  void element.offsetWidth; // restart the animation
  element.classList.add('flash');
}

blogEvents.addEventListener('newPost', (event) => {
  const post = JSON.parse(event.data);
  const postElement = document.getElementById(`post-${post.id}`) || createPost(post.id);
  postElement.querySelector('.post-title').textContent = post.title;
  postElement.querySelector('.post-content').textContent = post.excerpt;
  postElement.querySelector('.post-meta').textContent =
    `发布于: ${new Date(post.publishTime).toLocaleString()}`;
  document.getElementById('blog-posts').prepend(postElement);
  flash(postElement);
});

blogEvents.addEventListener('postUpdate', (event) => {
  const update = JSON.parse(event.data);
  let existingPost = document.getElementById(`post-${update.id}`);
  if (!existingPost) {
    existingPost = createPost(update.id);
    existingPost.querySelector('.post-title').textContent = `Post ${update.id}`;
    existingPost.querySelector('.post-meta').textContent = 'published before this page opened';
    document.getElementById('blog-posts').append(existingPost);
  }
  existingPost.querySelector('.post-content').textContent = update.content;
  const title = existingPost.querySelector('.post-title');
  if (!title.querySelector('.tag')) {
    const tag = document.createElement('span');
    tag.className = 'tag';
    tag.textContent = 'edited';
    title.append(tag);
  }
  flash(existingPost);
});
