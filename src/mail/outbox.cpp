#include "mail/outbox.h"

namespace torii::mail {

SmtpOutbox::SmtpOutbox(SmtpSettings settings, Sent sent, std::size_t capacity)
    : settings_(std::move(settings)), sent_(std::move(sent)), capacity_(capacity), thread_([this] { run(); }) {}

SmtpOutbox::~SmtpOutbox() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  thread_.join();
}

bool SmtpOutbox::post(MailMessage message) {
  {
    const std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() >= capacity_) return false;
    queue_.push_back(std::move(message));
  }
  wake_.notify_one();
  return true;
}

void SmtpOutbox::run() {
  while (true) {
    MailMessage message;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      message = std::move(queue_.front());
      queue_.pop_front();
    }
    const Status sent = send_mail(settings_, message);
    if (sent_) sent_(message, sent);
  }
}

}  // namespace torii::mail
