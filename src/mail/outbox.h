// Where the server hands messages to be sent, off the thread that asked: a request handler
// posts and answers at once, so neither its answer nor its timing depends on the mail.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "mail/smtp_client.h"

namespace torii::mail {

class Outbox {
 public:
  virtual ~Outbox() = default;
  // Queues the message; false when it cannot be queued (full, stopping). Never blocks on
  // the network. Thread-safe.
  [[nodiscard]] virtual bool post(MailMessage message) = 0;
};

// Sends queued messages one at a time on a thread of its own, with send_mail().
class SmtpOutbox final : public Outbox {
 public:
  // Called on the outbox's thread after each attempt, with the outcome (no retries).
  using Sent = std::function<void(const MailMessage&, const Status&)>;

  SmtpOutbox(SmtpSettings settings, Sent sent, std::size_t capacity = 100);
  // Drops what is still queued and waits for the message being sent (bounded by the
  // settings' deadlines).
  ~SmtpOutbox() override;
  SmtpOutbox(const SmtpOutbox&) = delete;
  SmtpOutbox& operator=(const SmtpOutbox&) = delete;

  [[nodiscard]] bool post(MailMessage message) override;

 private:
  void run();

  const SmtpSettings settings_;
  const Sent sent_;
  const std::size_t capacity_;
  std::mutex mutex_;  // guards queue_ and stopping_
  std::condition_variable wake_;
  std::deque<MailMessage> queue_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts after the members above exist
};

}  // namespace torii::mail
