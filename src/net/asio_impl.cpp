// The one translation unit that compiles Asio and Asio's SSL support (separate
// compilation: BOOST_ASIO_SEPARATE_COMPILATION is set for every user of torii_net).
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
