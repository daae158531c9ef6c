#include "console/live.h"

#include <algorithm>
#include <variant>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace torii::console {

using nlohmann::json;

std::string telemetry_message(std::string_view device_id, std::string_view at,
                              const std::vector<policy::Metric>& metrics) {
  json values = json::object();
  for (const auto& m : metrics) {
    std::visit([&](const auto& v) { values[m.name] = v; }, m.value);
  }
  return json{{"type", "telemetry"}, {"device", device_id}, {"at", at}, {"metrics", std::move(values)}}.dump();
}

std::string status_message(std::string_view device_id, bool online, std::string_view at) {
  return json{{"type", "status"}, {"device", device_id}, {"online", online}, {"at", at}}.dump();
}

struct LiveFeed::Registry {
  Options options;
  std::vector<Subscription*> open;  // every subscription not yet stopped (or destroyed)
};

class LiveFeed::Subscription final : public WebSocketFeed {
 public:
  Subscription(std::weak_ptr<Registry> registry, Subscriber subscriber, std::set<std::string, std::less<>> devices,
               StillAllowed still_allowed)
      : registry_(std::move(registry)),
        subscriber_(std::move(subscriber)),
        devices_(std::move(devices)),
        still_allowed_(std::move(still_allowed)) {}
  ~Subscription() override { stop(); }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  void start(std::function<void()> wake) override { wake_ = std::move(wake); }

  std::vector<std::string> take() override {
    std::vector<std::string> out;
    out.reserve(queue_.size() + 1);
    if (dropped_ > 0) {
      out.push_back(json{{"type", "dropped"}, {"count", dropped_}}.dump());
      dropped_ = 0;
    }
    for (auto& m : queue_) out.push_back(std::move(m));
    queue_.clear();
    return out;
  }

  [[nodiscard]] std::optional<std::pair<websocket::CloseCode, std::string>> ended() const override { return ended_; }

  void check() override {
    if (ended_ || !still_allowed_) return;
    auto allowed = still_allowed_();
    if (!allowed) {
      spdlog::error("console live view: {}", allowed.error().message);
      end(websocket::CloseCode::internal_error, "internal error");
    } else if (!*allowed) {
      end(websocket::CloseCode::policy_violation, "the session ended");
    }
  }

  void stop() override {
    if (stopped_) return;
    stopped_ = true;
    wake_ = nullptr;
    if (auto registry = registry_.lock()) std::erase(registry->open, this);
  }

  [[nodiscard]] const Subscriber& subscriber() const { return subscriber_; }

  void offer(const LiveMessage& message, std::size_t max_queued) {
    if (ended_ || message.organisation_id != subscriber_.organisation_id) return;
    if (!devices_.empty() && !devices_.contains(message.device_id)) return;
    if (queue_.size() >= max_queued) {
      queue_.pop_front();
      ++dropped_;
    }
    queue_.push_back(message.text);
    if (wake_) wake_();
  }

  void end(websocket::CloseCode code, std::string why) {
    if (ended_) return;
    ended_ = std::pair{code, std::move(why)};
    if (wake_) wake_();
  }

 private:
  std::weak_ptr<Registry> registry_;
  Subscriber subscriber_;
  std::set<std::string, std::less<>> devices_;
  StillAllowed still_allowed_;
  std::function<void()> wake_;
  std::deque<std::string> queue_;
  std::size_t dropped_ = 0;
  std::optional<std::pair<websocket::CloseCode, std::string>> ended_;
  bool stopped_ = false;
};

LiveFeed::LiveFeed() : LiveFeed(Options{}) {}

LiveFeed::LiveFeed(Options options) : registry_(std::make_shared<Registry>(Registry{options, {}})) {}

LiveFeed::~LiveFeed() {
  // A copy: end() may run a wake-up that stops a subscription, which edits the list.
  const auto open = registry_->open;
  for (auto* s : open) s->end(websocket::CloseCode::going_away, "the server is stopping");
}

std::shared_ptr<WebSocketFeed> LiveFeed::subscribe(Subscriber subscriber, std::set<std::string, std::less<>> devices,
                                                   StillAllowed still_allowed) {
  auto& open = registry_->open;
  const auto mine = std::count_if(open.begin(), open.end(), [&](const Subscription* s) {
    return s->subscriber().person_id == subscriber.person_id;
  });
  if (open.size() >= registry_->options.max_subscriptions ||
      static_cast<std::size_t>(mine) >= registry_->options.max_per_person) {
    return nullptr;
  }
  auto s =
      std::make_shared<Subscription>(registry_, std::move(subscriber), std::move(devices), std::move(still_allowed));
  open.push_back(s.get());
  return s;
}

void LiveFeed::publish(const LiveMessage& message) {
  const auto open = registry_->open;
  for (auto* s : open) s->offer(message, registry_->options.max_queued);
}

void LiveFeed::end_for(std::string_view credential, std::string_view why) {
  const auto open = registry_->open;
  for (auto* s : open) {
    if (s->subscriber().credential == credential) s->end(websocket::CloseCode::policy_violation, std::string(why));
  }
}

std::size_t LiveFeed::open() const { return registry_->open.size(); }

}  // namespace torii::console
