#include "base/ip.h"

#include <gtest/gtest.h>

namespace torii {
namespace {

IpAddress ip(std::string_view s) { return *IpAddress::parse(s); }

TEST(IpAddress, ParsesBothFamiliesAndRefusesNames) {
  EXPECT_TRUE(ip("192.0.2.1").v4);
  EXPECT_FALSE(ip("2001:db8::1").v4);
  EXPECT_EQ(ip("2001:db8::1").to_string(), "2001:db8::1");
  EXPECT_EQ(ip("192.0.2.1").to_string(), "192.0.2.1");
  EXPECT_FALSE(IpAddress::parse("localhost"));
  EXPECT_FALSE(IpAddress::parse("256.1.1.1"));
  EXPECT_FALSE(IpAddress::parse(std::string_view("127.0.0.1\0evil", 14)));
  EXPECT_FALSE(CidrBlock::parse(std::string_view("10.0.0.0\0junk/8", 16)));
}

TEST(CidrBlock, MatchesAddressesInsideOnly) {
  const auto net = *CidrBlock::parse("10.1.0.0/16");
  EXPECT_TRUE(net.contains(ip("10.1.200.3")));
  EXPECT_FALSE(net.contains(ip("10.2.0.1")));
  EXPECT_FALSE(net.contains(ip("2001:db8::1")));
  const auto v6 = *CidrBlock::parse("2001:db8::/33");
  EXPECT_TRUE(v6.contains(ip("2001:db8:7fff::1")));
  EXPECT_FALSE(v6.contains(ip("2001:db8:8000::1")));
  EXPECT_FALSE(v6.contains(ip("10.1.0.1")));
  EXPECT_TRUE(CidrBlock::parse("0.0.0.0/0")->contains(ip("203.0.113.9")));
  EXPECT_TRUE(CidrBlock::parse("192.0.2.7")->contains(ip("192.0.2.7")));
  EXPECT_FALSE(CidrBlock::parse("192.0.2.7")->contains(ip("192.0.2.8")));
}

TEST(CidrBlock, RefusesMalformedBlocks) {
  EXPECT_FALSE(CidrBlock::parse("10.0.0.0/33"));
  EXPECT_FALSE(CidrBlock::parse("10.0.0.0/"));
  EXPECT_FALSE(CidrBlock::parse("10.0.0.0/8x"));
  EXPECT_FALSE(CidrBlock::parse("2001:db8::/129"));
  const auto host_bits = CidrBlock::parse("10.0.0.1/8");
  ASSERT_FALSE(host_bits);
  EXPECT_NE(host_bits.error().message.find("10.0.0.0/8"), std::string::npos);
}

}  // namespace
}  // namespace torii
