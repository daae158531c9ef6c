#include "notify/dispatcher.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "net/tls_client.h"

namespace torii::notify {
namespace {

constexpr std::size_t kMaxStatusLineBytes = std::size_t{8} * 1024;
// Between two looks at the rate limits when nothing else is due.
constexpr std::chrono::milliseconds kIdleWait{1000};

std::uint64_t random_below(Random& random, std::uint64_t bound) {
  std::array<std::uint8_t, 8> bytes{};
  random.fill(bytes);
  std::uint64_t value = 0;
  for (const auto b : bytes) value = (value << 8U) | b;
  return bound == 0 ? 0 : value % bound;
}

// "HTTP/1.1 204 No Content" -> 204.
std::optional<int> status_code(std::string_view line) {
  if (!line.starts_with("HTTP/1.") || line.size() < 12 || line[8] != ' ') return std::nullopt;
  int code = 0;
  const auto [ptr, ec] = std::from_chars(line.data() + 9, line.data() + 12, code);
  if (ec != std::errc{} || ptr != line.data() + 12 || code < 100 || code > 599) return std::nullopt;
  return code;
}

std::string host_header(const WebhookUrl& url) {
  std::string host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
  if (url.port != 443) host += ":" + std::to_string(url.port);
  return host;
}

net::TlsClientOptions client_options(const DeliveryPolicy& policy, const std::string& host, std::uint16_t port,
                                     const std::string& ca_pem) {
  net::TlsClientOptions options{host, port, ca_pem, policy.timeout, {}};
  if (!policy.allow_local_destinations) {
    options.allow_address = [](const IpAddress& address) { return !is_local_destination(address); };
  }
  return options;
}

}  // namespace

bool is_local_destination(const IpAddress& address) {
  static const std::vector<CidrBlock> kLocal = [] {
    std::vector<CidrBlock> blocks;
    for (const char* text : {"127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10", "0.0.0.0/8", "::/128",
                             "224.0.0.0/4", "ff00::/8", "::ffff:0:0/96"}) {
      blocks.push_back(*CidrBlock::parse(text));
    }
    return blocks;
  }();
  return std::ranges::any_of(kLocal, [&](const CidrBlock& block) { return block.contains(address); });
}

std::chrono::milliseconds backoff_delay(const DeliveryPolicy& policy, std::size_t failures, Random& random) {
  auto delay = policy.first_backoff;
  for (std::size_t i = 1; i < failures && delay < policy.max_backoff; ++i) delay *= 2;
  delay = std::min(delay, policy.max_backoff);
  const auto half = delay.count() / 2;
  return std::chrono::milliseconds(
      half + static_cast<std::int64_t>(random_below(random, static_cast<std::uint64_t>(delay.count() - half) + 1)));
}

Dispatcher::Dispatcher(Options options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : &system_clock_),
      random_(options_.random != nullptr ? options_.random : &system_random_),
      thread_([this] { run(); }) {}

Dispatcher::~Dispatcher() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

Status Dispatcher::set_channel(const std::string& id, Channel channel) {
  if (channel.type == ChannelType::mqtt && !options_.publish_mqtt) {
    return fail(Errc::invalid_argument, "notify: MQTT is not configured on this server");
  }
  if (channel.type == ChannelType::email && options_.outbox == nullptr) {
    return fail(Errc::invalid_argument, "notify: e-mail is not configured on this server");
  }
  // What parse_channel guarantees, for channels built otherwise.
  if (channel.type == ChannelType::webhook &&
      (channel.webhook.host.empty() || channel.secret.size() < kMinSecretChars)) {
    return fail(Errc::invalid_argument, "notify: a webhook needs a host and a secret of at least 32 characters");
  }
  if ((channel.type == ChannelType::syslog && channel.host.empty()) ||
      (channel.type == ChannelType::email && channel.to.empty()) ||
      (channel.type == ChannelType::mqtt && channel.devices.empty())) {
    return fail(Errc::invalid_argument, "notify: the channel has nowhere to send to");
  }
  const std::lock_guard lock(mutex_);
  auto shared = std::make_shared<const Channel>(std::move(channel));
  if (auto it = channels_.find(id); it != channels_.end()) {
    if (it->second.channel->rate != shared->rate) it->second.limiter = RateLimiter(shared->rate, *clock_);
    it->second.channel = std::move(shared);
  } else {
    const RateLimit rate = shared->rate;
    channels_.emplace(id, ChannelState{std::move(shared), RateLimiter(rate, *clock_), {}, {}});
  }
  return ok();
}

void Dispatcher::remove_channel(std::string_view id) {
  const std::lock_guard lock(mutex_);
  if (auto it = channels_.find(id); it != channels_.end()) channels_.erase(it);
}

std::string Dispatcher::new_delivery_id() {
  std::array<std::uint8_t, 16> bytes{};
  random_->fill(bytes);
  return hex_encode(bytes);
}

void Dispatcher::enqueue(ChannelState& state, Notice notice) {
  if (state.queue.size() >= std::max<std::size_t>(options_.policy.queue_per_channel, 1)) {
    state.queue.pop_front();
    ++state.stats.dropped;
  }
  state.queue.push_back(Delivery{new_delivery_id(), std::move(notice), 0, std::chrono::steady_clock::now()});
}

void Dispatcher::queue_summaries() {
  for (auto& [id, state] : channels_) {
    if (auto count = state.limiter.take_summary()) enqueue(state, SuppressedNotice{*count});
  }
}

Result<std::string> Dispatcher::notify(std::string_view channel_id, const AlertNotice& notice) {
  std::string id;
  {
    const std::lock_guard lock(mutex_);
    auto it = channels_.find(channel_id);
    if (it == channels_.end()) return fail(Errc::not_found, "notify: no such channel");
    auto& state = it->second;
    if (auto count = state.limiter.take_summary()) enqueue(state, SuppressedNotice{*count});
    if (!state.limiter.try_acquire()) {
      ++state.stats.suppressed;
      return fail(Errc::limit_exceeded, "notify: the channel's rate limit suppressed the notification");
    }
    enqueue(state, notice);
    id = state.queue.back().id;
  }
  wake_.notify_all();
  return id;
}

std::vector<DeadLetter> Dispatcher::dead_letters() const {
  const std::lock_guard lock(mutex_);
  return {dead_letters_.begin(), dead_letters_.end()};
}

ChannelStats Dispatcher::stats(std::string_view channel_id) const {
  const std::lock_guard lock(mutex_);
  auto it = channels_.find(channel_id);
  if (it == channels_.end()) return {};
  ChannelStats out = it->second.stats;
  out.queued = it->second.queue.size();
  return out;
}

void Dispatcher::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    queue_summaries();
    // The delivery due first, over all channels.
    ChannelState* due_state = nullptr;
    std::string due_channel;
    std::size_t due_index = 0;
    for (auto& [id, state] : channels_) {
      for (std::size_t i = 0; i < state.queue.size(); ++i) {
        if (due_state == nullptr || state.queue[i].due < due_state->queue[due_index].due) {
          due_state = &state;
          due_channel = id;
          due_index = i;
        }
      }
    }
    const auto now = std::chrono::steady_clock::now();
    if (due_state == nullptr || due_state->queue[due_index].due > now) {
      auto until = now + kIdleWait;
      if (due_state != nullptr) until = std::min(until, due_state->queue[due_index].due);
      wake_.wait_until(lock, until);
      continue;
    }
    Delivery delivery = std::move(due_state->queue[due_index]);
    due_state->queue.erase(due_state->queue.begin() + static_cast<std::ptrdiff_t>(due_index));
    const auto channel = due_state->channel;
    lock.unlock();
    const Status outcome = attempt(due_channel, *channel, delivery);
    lock.lock();
    ++delivery.attempts;
    // The channel may have been removed (or replaced) meanwhile.
    auto it = channels_.find(due_channel);
    if (it == channels_.end()) continue;
    auto& state = it->second;
    if (outcome) {
      ++state.stats.delivered;
      continue;
    }
    ++state.stats.failed_attempts;
    if (delivery.attempts < std::max<std::size_t>(options_.policy.max_attempts, 1) &&
        outcome.error().is(Errc::unavailable)) {
      const auto wait = options_.backoff ? options_.backoff(delivery.attempts)
                                         : backoff_delay(options_.policy, delivery.attempts, *random_);
      delivery.due = std::chrono::steady_clock::now() + wait;
      // The queue filled up during the attempt: this delivery is the oldest, so it goes.
      if (state.queue.size() >= std::max<std::size_t>(options_.policy.queue_per_channel, 1)) {
        ++state.stats.dropped;
      } else {
        state.queue.push_front(std::move(delivery));
      }
      continue;
    }
    ++state.stats.dead_letters;
    DeadLetter dead{due_channel, delivery.id, outcome.error().message, delivery.attempts,
                    to_unix_millis(clock_->now())};
    if (dead_letters_.size() >= std::max<std::size_t>(options_.policy.dead_letters_kept, 1)) dead_letters_.pop_front();
    dead_letters_.push_back(dead);
    if (options_.on_dead_letter) {
      lock.unlock();
      options_.on_dead_letter(dead.channel_id, dead.delivery_id, dead.reason);
      lock.lock();
    }
  }
}

Status Dispatcher::attempt(const std::string& channel_id, const Channel& channel, Delivery& delivery) {
  switch (channel.type) {
    case ChannelType::webhook: return send_webhook(channel, delivery);
    case ChannelType::syslog: return send_syslog(channel, delivery);
    case ChannelType::email: return send_email(channel, delivery);
    case ChannelType::mqtt:
      return options_.publish_mqtt(channel_id, channel.devices,
                                   notification_json(delivery.notice, delivery.id, to_unix_millis(clock_->now())));
  }
  return fail(Errc::invalid_argument, "notify: unknown channel type");
}

Status Dispatcher::send_webhook(const Channel& channel, const Delivery& delivery) {
  const auto now = clock_->now();
  const std::string body = notification_json(delivery.notice, delivery.id, to_unix_millis(now));
  if (body.size() > kMaxWebhookBodyBytes) {
    return fail(Errc::invalid_argument, "webhook: the notification is larger than 64 KiB");
  }
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  std::string request = "POST " + channel.webhook.target + " HTTP/1.1\r\n";
  request += "Host: " + host_header(channel.webhook) + "\r\n";
  request += "User-Agent: torii\r\nContent-Type: application/json\r\n";
  request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  request += "X-Torii-Timestamp: " + std::to_string(seconds) + "\r\n";
  request += "X-Torii-Signature: " + sign_webhook(channel.secret, seconds, body) + "\r\n";
  request += "X-Torii-Delivery: " + delivery.id + "\r\n";
  request += "Connection: close\r\n\r\n";
  request += body;

  auto client = net::TlsClient::connect(
      client_options(options_.policy, channel.webhook.host, channel.webhook.port, channel.ca_pem));
  if (!client) return tl::unexpected(Error{client.error().code, "webhook: " + client.error().message});
  if (auto st = (*client)->write(request); !st) return fail(Errc::unavailable, "webhook: " + st.error().message);
  std::string answer;
  std::array<char, 1024> buffer{};
  while (answer.find("\r\n") == std::string::npos) {
    if (answer.size() > kMaxStatusLineBytes) return fail(Errc::unavailable, "webhook: the status line is too long");
    auto n = (*client)->read_some(buffer);
    if (!n) return fail(Errc::unavailable, "webhook: " + n.error().message);
    if (*n == 0) return fail(Errc::unavailable, "webhook: the receiver closed the connection without answering");
    answer.append(buffer.data(), *n);
  }
  (*client)->close();
  const auto code = status_code(std::string_view(answer).substr(0, answer.find("\r\n")));
  if (!code) return fail(Errc::unavailable, "webhook: the receiver's answer is not HTTP");
  if (*code < 200 || *code > 299) {
    return fail(Errc::unavailable, "webhook: the receiver answered HTTP " + std::to_string(*code) +
                                       (*code >= 300 && *code < 400 ? " (redirects are not followed)" : ""));
  }
  return ok();
}

Status Dispatcher::send_syslog(const Channel& channel, const Delivery& delivery) {
  const std::string frame = octet_counted(syslog_message(
      delivery.notice, SyslogOrigin{options_.hostname, channel.app_name, channel.facility}, clock_->now()));
  auto client = net::TlsClient::connect(client_options(options_.policy, channel.host, channel.port, channel.ca_pem));
  if (!client) return tl::unexpected(Error{client.error().code, "syslog: " + client.error().message});
  if (auto st = (*client)->write(frame); !st) return fail(Errc::unavailable, "syslog: " + st.error().message);
  (*client)->close();
  return ok();
}

Status Dispatcher::send_email(const Channel& channel, Delivery& delivery) {
  const auto text = email_text(delivery.notice);
  for (; delivery.recipients_posted < channel.to.size(); ++delivery.recipients_posted) {
    if (!options_.outbox->post(mail::MailMessage{channel.to[delivery.recipients_posted], text.subject, text.body})) {
      return fail(Errc::unavailable, "email: the outbox is full");
    }
  }
  return ok();
}

}  // namespace torii::notify
