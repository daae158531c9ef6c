// The gateway's connection shell: MQTT over the TLS streams of the gateway listener.
//
// For each connection (already past the firewall and a mutual-TLS handshake, net/listener.h):
//   1. the client certificate names the device (Broker::authenticate); anything else is
//      closed before a byte of MQTT is read (IIIT N1, J9);
//   2. the connection reads and feeds an mqtt::Session and writes what the session produced;
//      no CONNECT within connect_timeout, or no packet within 1.5 × keep-alive, closes it
//      (JPCERT II-6), and a closed connection whose peer takes none of its last packets
//      for 5 s is cut. One timer checks every connection's deadline once a second, so a
//      deadline is enforced up to a second late.
// A connection is driven by callbacks, not coroutines: an idle one holds its TLS connection,
// its session and one wait for input, and nothing else (no frames, no buffers, no timer).
//
// Threading: everything runs on the listener's io_context thread.
#pragma once

#include <chrono>
#include <memory>

#include "broker/broker.h"
#include "net/listener.h"

namespace torii::broker {

struct GatewayOptions {
  std::chrono::seconds connect_timeout{10};
};

struct GatewayEvents {
  // A TLS-authenticated peer whose certificate names no usable device.
  std::function<void(const net::PeerInfo&, const std::string& reason)> refused;
  std::function<void(const net::PeerInfo&, const DeviceInfo&)> connected;
  // reason: the MQTT reason code's name; detail: what the session or broker said.
  std::function<void(const net::PeerInfo&, const DeviceInfo&, mqtt::ReasonCode reason, const std::string& detail)>
      disconnected;
};

class Deadlines;  // of the gateway's connections (gateway.cpp)

class Gateway final : public net::ConnectionHandler {
 public:
  Gateway(Broker& broker, GatewayOptions options, GatewayEvents events);

  void adopt(std::unique_ptr<net::TlsConnection> tls) override;

 private:
  Broker& broker_;
  GatewayOptions options_;
  GatewayEvents events_;
  std::weak_ptr<Deadlines> deadlines_;  // owned by the connections listed in it
};

}  // namespace torii::broker
