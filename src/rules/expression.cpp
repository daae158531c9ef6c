#include "rules/expression.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <system_error>

#include <fmt/format.h>

#include "policy/profile.h"

namespace torii::rules {

enum class Op {
  number,
  boolean,
  metric,  // a bare metric name, or last(m)
  window,
  absent,
  neg,
  add,
  sub,
  mul,
  div,
  lt,
  le,
  gt,
  ge,
  eq,
  ne,
  not_,
  and_,
  or_,
};

struct Expression::Node {
  Op op = Op::number;
  double number = 0;
  bool boolean = false;
  std::string metric;
  WindowFunction function = WindowFunction::avg;
  std::chrono::milliseconds duration{0};
  int left = -1;
  int right = -1;
  std::size_t begin = 0;  // the node's text: [begin, end)
  std::size_t end = 0;
  ValueKind kind = ValueKind::any;
  std::size_t depth = 1;
};

struct Expression::Tree {
  std::string text;
  std::vector<Node> nodes;
  int root = 0;
};

namespace {

using Node = Expression::Node;
using Tree = Expression::Tree;
using std::chrono::milliseconds;

bool ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool ident_char(char c) { return ident_start(c) || (c >= '0' && c <= '9'); }
bool digit(char c) { return c >= '0' && c <= '9'; }
bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

enum class Tok { end, number, duration, word, lparen, rparen, comma, plus, minus, star, slash, lt, le, gt, ge, eq, ne };

struct Token {
  Tok kind = Tok::end;
  std::size_t begin = 0;
  std::size_t end = 0;
  double number = 0;
  milliseconds duration{0};
  std::string_view word;
};

struct Failure {
  ParseError error;
};

std::string_view op_text(Op op) {
  switch (op) {
    case Op::lt: return "<";
    case Op::le: return "<=";
    case Op::gt: return ">";
    case Op::ge: return ">=";
    case Op::eq: return "==";
    case Op::ne: return "!=";
    case Op::add: return "+";
    case Op::sub: return "-";
    case Op::mul: return "*";
    case Op::div: return "/";
    default: return "";
  }
}

bool is_comparison(Op op) { return op >= Op::lt && op <= Op::ne; }

// Durations: a whole number of 1..9 digits and a unit, nothing else.
std::optional<milliseconds> duration_of(std::string_view digits, char unit) {
  if (digits.empty() || digits.size() > 9) return std::nullopt;
  std::int64_t n = 0;
  for (char c : digits) {
    if (!digit(c)) return std::nullopt;
    n = n * 10 + (c - '0');
  }
  switch (unit) {
    case 's': return std::chrono::seconds(n);
    case 'm': return std::chrono::minutes(n);
    case 'h': return std::chrono::hours(n);
    default: return std::nullopt;
  }
}

// A token safe to quote in an error (identifier, number or operator characters only), cut short.
std::string quoted(std::string_view word) {
  constexpr std::size_t kMaxQuoted = 32;
  std::string out(word.substr(0, kMaxQuoted));
  if (word.size() > kMaxQuoted) out += "...";
  return "'" + out + "'";
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  tl::expected<Tree, ParseError> run() {
    if (text_.size() > kMaxTextBytes) {
      return tl::unexpected(ParseError{kMaxTextBytes, fmt::format("longer than {} bytes", kMaxTextBytes)});
    }
    tree_.text = std::string(text_);
    auto result = parse_all();
    if (!result) return tl::unexpected(std::move(result.error()));
    tree_.root = *result;
    return std::move(tree_);
  }

 private:
  tl::expected<int, ParseError> parse_all() {
    auto first = lex();
    if (!first) return tl::unexpected(first.error());
    token_ = *first;
    if (token_.kind == Tok::end) return tl::unexpected(ParseError{0, "empty expression"});
    auto root = parse_or();
    if (!root) return root;
    if (token_.kind != Tok::end) return fail(token_.begin, "unexpected " + describe_token(token_));
    return root;
  }

  static tl::unexpected<ParseError> fail(std::size_t position, std::string message) {
    return tl::unexpected(ParseError{position, std::move(message)});
  }

  std::string describe_token(const Token& t) const {
    switch (t.kind) {
      case Tok::end: return "end of text";
      case Tok::word: return quoted(t.word);
      default: return quoted(text_.substr(t.begin, t.end - t.begin));  // a number can be long
    }
  }

  tl::expected<Token, ParseError> lex() {
    while (pos_ < text_.size() && space(text_[pos_])) ++pos_;
    Token t;
    t.begin = pos_;
    if (pos_ >= text_.size()) {
      t.kind = Tok::end;
      t.end = pos_;
      return t;
    }
    const char c = text_[pos_];
    if (digit(c)) return lex_number();
    if (ident_start(c)) {
      std::size_t end = pos_;
      while (end < text_.size() && ident_char(text_[end])) ++end;
      t.kind = Tok::word;
      t.word = text_.substr(pos_, end - pos_);
      t.end = pos_ = end;
      return t;
    }
    const char next = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
    std::size_t width = 1;
    switch (c) {
      case '(': t.kind = Tok::lparen; break;
      case ')': t.kind = Tok::rparen; break;
      case ',': t.kind = Tok::comma; break;
      case '+': t.kind = Tok::plus; break;
      case '-': t.kind = Tok::minus; break;
      case '*': t.kind = Tok::star; break;
      case '/': t.kind = Tok::slash; break;
      case '<':
        t.kind = next == '=' ? Tok::le : Tok::lt;
        width = next == '=' ? 2 : 1;
        break;
      case '>':
        t.kind = next == '=' ? Tok::ge : Tok::gt;
        width = next == '=' ? 2 : 1;
        break;
      case '=':
        if (next != '=') return fail(pos_, "unexpected '=' (equality is '==')");
        t.kind = Tok::eq;
        width = 2;
        break;
      case '!':
        if (next != '=') return fail(pos_, "unexpected '!' (negation is 'not')");
        t.kind = Tok::ne;
        width = 2;
        break;
      default:
        if (c >= 0x20 && c < 0x7f) return fail(pos_, fmt::format("unexpected character '{}'", c));
        return fail(pos_, fmt::format("unexpected byte 0x{:02x}", static_cast<unsigned char>(c)));
    }
    pos_ += width;
    t.end = pos_;
    return t;
  }

  tl::expected<Token, ParseError> lex_number() {
    Token t;
    t.begin = pos_;
    std::size_t end = pos_;
    while (end < text_.size() && digit(text_[end])) ++end;
    const std::size_t integer_end = end;
    if (end < text_.size() && text_[end] == '.') {
      ++end;
      if (end >= text_.size() || !digit(text_[end])) return fail(end, "expected a digit after '.'");
      while (end < text_.size() && digit(text_[end])) ++end;
    }
    if (end < text_.size() && (text_[end] == 'e' || text_[end] == 'E')) {
      std::size_t exp = end + 1;
      if (exp < text_.size() && (text_[exp] == '+' || text_[exp] == '-')) ++exp;
      if (exp < text_.size() && digit(text_[exp])) {
        end = exp;
        while (end < text_.size() && digit(text_[end])) ++end;
      }
    }
    if (end < text_.size() && ident_char(text_[end])) {
      // A duration: whole number and unit, e.g. 30s.
      const bool unit_follows =
          end == integer_end && end + 1 <= text_.size() && (end + 1 == text_.size() || !ident_char(text_[end + 1]));
      if (unit_follows) {
        const auto d = duration_of(text_.substr(pos_, end - pos_), text_[end]);
        if (d) {
          t.kind = Tok::duration;
          t.duration = *d;
          t.end = pos_ = end + 1;
          return t;
        }
        if (end - pos_ > 9 && (text_[end] == 's' || text_[end] == 'm' || text_[end] == 'h')) {
          return fail(pos_, "duration out of range (1s to 24h)");
        }
      }
      return fail(pos_, "invalid number or duration (durations are like 30s, 5m, 2h)");
    }
    double value = 0;
    const auto* first = text_.data() + pos_;
    const auto [ptr, ec] = std::from_chars(first, text_.data() + end, value);
    if (ec != std::errc() || ptr != text_.data() + end || !std::isfinite(value)) {
      return fail(pos_, "number out of range");
    }
    t.kind = Tok::number;
    t.number = value;
    t.end = pos_ = end;
    return t;
  }

  tl::expected<void, ParseError> advance() {
    auto next = lex();
    if (!next) return tl::unexpected(next.error());
    token_ = *next;
    return {};
  }

  bool at_word(std::string_view word) const { return token_.kind == Tok::word && token_.word == word; }

  // Adds a node, enforcing the node count, the depth and the operand kinds.
  tl::expected<int, ParseError> add(Node node, std::size_t position) {
    if (tree_.nodes.size() >= kMaxNodes) {
      return fail(position, fmt::format("more than {} operands and operators", kMaxNodes));
    }
    std::size_t depth = 0;
    for (int child : {node.left, node.right}) {
      if (child >= 0) depth = std::max(depth, tree_.nodes[static_cast<std::size_t>(child)].depth);
    }
    node.depth = depth + 1;
    if (node.depth > kMaxDepth) return fail(position, fmt::format("nested deeper than {} levels", kMaxDepth));
    tree_.nodes.push_back(std::move(node));
    return static_cast<int>(tree_.nodes.size() - 1);
  }

  const Node& at(int index) const { return tree_.nodes[static_cast<std::size_t>(index)]; }

  tl::expected<void, ParseError> expect_kind(int index, ValueKind wanted, std::string_view message) const {
    const Node& n = at(index);
    if (n.kind != ValueKind::any && n.kind != wanted) return fail(n.begin, std::string(message));
    return {};
  }

  tl::expected<int, ParseError> binary(Op op, int left, int right, std::size_t op_position) {
    Node n;
    n.op = op;
    n.left = left;
    n.right = right;
    n.begin = at(left).begin;
    n.end = at(right).end;
    if (op == Op::and_ || op == Op::or_) {
      for (int side : {left, right}) {
        if (auto ok = expect_kind(side, ValueKind::boolean, "expected true or false here, not a number"); !ok) {
          return tl::unexpected(ok.error());
        }
      }
      n.kind = ValueKind::boolean;
    } else if (op == Op::eq || op == Op::ne) {
      const ValueKind a = at(left).kind;
      const ValueKind b = at(right).kind;
      if (a != ValueKind::any && b != ValueKind::any && a != b) {
        return fail(op_position, "cannot compare a number with true or false");
      }
      n.kind = ValueKind::boolean;
    } else {
      const std::string message =
          is_comparison(op)
              ? fmt::format("'{}' compares numbers; true and false compare with == and != only", op_text(op))
              : fmt::format("'{}' needs numbers, not true or false", op_text(op));
      for (int side : {left, right}) {
        if (auto ok = expect_kind(side, ValueKind::number, message); !ok) return tl::unexpected(ok.error());
      }
      n.kind = is_comparison(op) ? ValueKind::boolean : ValueKind::number;
    }
    return add(std::move(n), op_position);
  }

  // Guards the parser's own recursion (parentheses and prefix operators), which the node
  // depth alone would not bound.
  tl::expected<void, ParseError> enter(std::size_t position) {
    if (++level_ > kMaxDepth) return fail(position, fmt::format("nested deeper than {} levels", kMaxDepth));
    return {};
  }

  tl::expected<int, ParseError> parse_or() {
    auto left = parse_and();
    while (left && at_word("or")) {
      const std::size_t position = token_.begin;
      if (auto ok = advance(); !ok) return tl::unexpected(ok.error());
      auto right = parse_and();
      if (!right) return right;
      left = binary(Op::or_, *left, *right, position);
    }
    return left;
  }

  tl::expected<int, ParseError> parse_and() {
    auto left = parse_not();
    while (left && at_word("and")) {
      const std::size_t position = token_.begin;
      if (auto ok = advance(); !ok) return tl::unexpected(ok.error());
      auto right = parse_not();
      if (!right) return right;
      left = binary(Op::and_, *left, *right, position);
    }
    return left;
  }

  tl::expected<int, ParseError> parse_not() {
    if (!at_word("not")) return parse_comparison();
    const std::size_t position = token_.begin;
    if (auto ok = enter(position); !ok) return tl::unexpected(ok.error());
    if (auto ok = advance(); !ok) return tl::unexpected(ok.error());
    auto operand = parse_not();
    --level_;
    if (!operand) return operand;
    if (auto ok = expect_kind(*operand, ValueKind::boolean, "'not' needs true or false, not a number"); !ok) {
      return tl::unexpected(ok.error());
    }
    Node n;
    n.op = Op::not_;
    n.left = *operand;
    n.begin = position;
    n.end = at(*operand).end;
    n.kind = ValueKind::boolean;
    return add(std::move(n), position);
  }

  static std::optional<Op> comparison_op(Tok kind) {
    switch (kind) {
      case Tok::lt: return Op::lt;
      case Tok::le: return Op::le;
      case Tok::gt: return Op::gt;
      case Tok::ge: return Op::ge;
      case Tok::eq: return Op::eq;
      case Tok::ne: return Op::ne;
      default: return std::nullopt;
    }
  }

  tl::expected<int, ParseError> parse_comparison() {
    auto left = parse_additive();
    if (!left) return left;
    const auto op = comparison_op(token_.kind);
    if (!op) return left;
    const std::size_t position = token_.begin;
    if (auto ok = advance(); !ok) return tl::unexpected(ok.error());
    auto right = parse_additive();
    if (!right) return right;
    if (comparison_op(token_.kind)) {
      return fail(token_.begin, "comparisons do not chain; join them with 'and'");
    }
    return binary(*op, *left, *right, position);
  }

  tl::expected<int, ParseError> parse_additive() {
    auto left = parse_term();
    while (left && (token_.kind == Tok::plus || token_.kind == Tok::minus)) {
      const Op op = token_.kind == Tok::plus ? Op::add : Op::sub;
      const std::size_t position = token_.begin;
      if (auto ok = advance(); !ok) return tl::unexpected(ok.error());
      auto right = parse_term();
      if (!right) return right;
      left = binary(op, *left, *right, position);
    }
    return left;
  }

  tl::expected<int, ParseError> parse_term() {
    auto left = parse_unary();
    while (left && (token_.kind == Tok::star || token_.kind == Tok::slash)) {
      const Op op = token_.kind == Tok::star ? Op::mul : Op::div;
      const std::size_t position = token_.begin;
      if (auto ok = advance(); !ok) return tl::unexpected(ok.error());
      auto right = parse_unary();
      if (!right) return right;
      left = binary(op, *left, *right, position);
    }
    return left;
  }

  tl::expected<int, ParseError> parse_unary() {
    if (token_.kind != Tok::minus) return parse_primary();
    const std::size_t position = token_.begin;
    if (auto ok = enter(position); !ok) return tl::unexpected(ok.error());
    if (auto ok = advance(); !ok) return tl::unexpected(ok.error());
    auto operand = parse_unary();
    --level_;
    if (!operand) return operand;
    if (auto ok = expect_kind(*operand, ValueKind::number, "'-' needs a number, not true or false"); !ok) {
      return tl::unexpected(ok.error());
    }
    Node n;
    n.op = Op::neg;
    n.left = *operand;
    n.begin = position;
    n.end = at(*operand).end;
    n.kind = ValueKind::number;
    return add(std::move(n), position);
  }

  tl::expected<int, ParseError> parse_primary() {
    const Token t = token_;
    switch (t.kind) {
      case Tok::number: {
        if (auto ok = advance(); !ok) return tl::unexpected(ok.error());
        Node n;
        n.op = Op::number;
        n.number = t.number;
        n.begin = t.begin;
        n.end = t.end;
        n.kind = ValueKind::number;
        return add(std::move(n), t.begin);
      }
      case Tok::lparen: {
        if (auto ok = enter(t.begin); !ok) return tl::unexpected(ok.error());
        if (auto ok = advance(); !ok) return tl::unexpected(ok.error());
        auto inner = parse_or();
        --level_;
        if (!inner) return inner;
        if (token_.kind != Tok::rparen) return fail(token_.begin, "expected ')'");
        if (auto ok = advance(); !ok) return tl::unexpected(ok.error());
        return inner;
      }
      case Tok::word: return parse_word();
      case Tok::duration: return fail(t.begin, "a duration is only allowed as a function's window");
      case Tok::end: return fail(t.begin, "expected a value, found the end of the text");
      default: return fail(t.begin, "expected a value, found " + describe_token(t));
    }
  }

  tl::expected<std::string, ParseError> metric_name(const Token& t) const {
    if (t.kind != Tok::word) return fail(t.begin, "expected a metric name");
    if (!policy::valid_name(t.word)) {
      return fail(t.begin, "metric names are 1..64 characters of a-z, 0-9 and _");
    }
    return std::string(t.word);
  }

  tl::expected<int, ParseError> parse_word() {
    const Token t = token_;
    if (t.word == "true" || t.word == "false") {
      if (auto ok = advance(); !ok) return tl::unexpected(ok.error());
      Node n;
      n.op = Op::boolean;
      n.boolean = t.word == "true";
      n.begin = t.begin;
      n.end = t.end;
      n.kind = ValueKind::boolean;
      return add(std::move(n), t.begin);
    }
    if (t.word == "and" || t.word == "or" || t.word == "not") {
      return fail(t.begin, "expected a value, found " + quoted(t.word));
    }
    if (auto ok = advance(); !ok) return tl::unexpected(ok.error());
    if (token_.kind == Tok::lparen) return parse_call(t);
    auto name = metric_name(t);
    if (!name) return tl::unexpected(name.error());
    Node n;
    n.op = Op::metric;
    n.metric = std::move(*name);
    n.begin = t.begin;
    n.end = t.end;
    return add(std::move(n), t.begin);
  }

  tl::expected<milliseconds, ParseError> window_argument() {
    if (token_.kind != Tok::duration) return fail(token_.begin, "expected a duration such as 30s, 5m or 2h");
    const milliseconds d = token_.duration;
    if (d < kMinWindow || d > kMaxWindow) return fail(token_.begin, "duration out of range (1s to 24h)");
    if (auto ok = advance(); !ok) return tl::unexpected(ok.error());
    return d;
  }

  tl::expected<void, ParseError> expect(Tok kind, std::string_view what) {
    if (token_.kind != kind) return fail(token_.begin, fmt::format("expected '{}'", what));
    return advance();
  }

  // name '(' already seen as the current token.
  tl::expected<int, ParseError> parse_call(const Token& name) {
    static const std::map<std::string_view, WindowFunction, std::less<>> kWindowed = {
        {"avg", WindowFunction::avg},     {"min", WindowFunction::min},   {"max", WindowFunction::max},
        {"count", WindowFunction::count}, {"rate", WindowFunction::rate},
    };
    Node n;
    n.begin = name.begin;
    n.kind = ValueKind::number;
    const auto windowed = kWindowed.find(name.word);
    if (windowed == kWindowed.end() && name.word != "absent" && name.word != "last") {
      return fail(name.begin, "unknown function " + quoted(name.word));
    }
    if (name.word != "last" && ++window_calls_ > kMaxWindowCalls) {
      return fail(name.begin, fmt::format("more than {} windowed functions", kMaxWindowCalls));
    }
    if (auto ok = advance(); !ok) return tl::unexpected(ok.error());  // '('
    if (name.word == "absent") {
      n.op = Op::absent;
      n.kind = ValueKind::boolean;
      auto d = window_argument();
      if (!d) return tl::unexpected(d.error());
      n.duration = *d;
    } else {
      auto metric = metric_name(token_);
      if (!metric) return tl::unexpected(metric.error());
      n.metric = std::move(*metric);
      if (auto ok = advance(); !ok) return tl::unexpected(ok.error());
      if (name.word == "last") {
        n.op = Op::metric;
        n.kind = ValueKind::any;
      } else {
        n.op = Op::window;
        n.function = windowed->second;
        if (auto ok = expect(Tok::comma, ","); !ok) return tl::unexpected(ok.error());
        auto d = window_argument();
        if (!d) return tl::unexpected(d.error());
        n.duration = *d;
      }
    }
    if (token_.kind != Tok::rparen) return fail(token_.begin, "expected ')'");
    n.end = token_.end;
    if (auto ok = advance(); !ok) return tl::unexpected(ok.error());
    return add(std::move(n), name.begin);
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  Token token_;
  Tree tree_;
  std::size_t level_ = 0;
  std::size_t window_calls_ = 0;
};

Value finite(double v) {
  if (!std::isfinite(v)) return std::monostate{};
  return v;
}

class Interpreter {
 public:
  Interpreter(const Tree& tree, const Inputs& inputs) : tree_(tree), inputs_(inputs) {}

  // Recursion is bounded by kMaxDepth, checked when parsing.
  Value eval(int index) const {
    const Node& n = tree_.nodes[static_cast<std::size_t>(index)];
    switch (n.op) {
      case Op::number: return n.number;
      case Op::boolean: return n.boolean;
      case Op::metric: {
        const auto v = inputs_.latest(n.metric);
        if (!v) return std::monostate{};
        if (const auto* d = std::get_if<double>(&*v)) return finite(*d);
        return std::get<bool>(*v);
      }
      case Op::window: {
        const auto v = inputs_.window(n.function, n.metric, n.duration);
        if (!v) return std::monostate{};
        return finite(*v);
      }
      case Op::absent: {
        const auto silence = inputs_.silence();
        if (!silence) return std::monostate{};
        return *silence >= n.duration;
      }
      case Op::neg: {
        const Value v = eval(n.left);
        if (const auto* d = std::get_if<double>(&v)) return -*d;
        return std::monostate{};
      }
      case Op::not_: {
        const Value v = eval(n.left);
        if (const auto* b = std::get_if<bool>(&v)) return !*b;
        return std::monostate{};
      }
      case Op::and_:
      case Op::or_: {
        const Value a = eval(n.left);
        const Value b = eval(n.right);
        const bool dominant = n.op == Op::or_;  // or: any true wins; and: any false wins
        const auto* x = std::get_if<bool>(&a);
        const auto* y = std::get_if<bool>(&b);
        if ((x != nullptr && *x == dominant) || (y != nullptr && *y == dominant)) return dominant;
        if (x != nullptr && y != nullptr) return !dominant;
        return std::monostate{};
      }
      default: return binary(n);
    }
  }

 private:
  Value binary(const Node& n) const {
    const Value a = eval(n.left);
    const Value b = eval(n.right);
    if (n.op == Op::eq || n.op == Op::ne) {
      if (a.index() != b.index() || std::holds_alternative<std::monostate>(a)) return std::monostate{};
      return (a == b) == (n.op == Op::eq);
    }
    const auto* x = std::get_if<double>(&a);
    const auto* y = std::get_if<double>(&b);
    if (x == nullptr || y == nullptr) return std::monostate{};
    switch (n.op) {
      case Op::add: return finite(*x + *y);
      case Op::sub: return finite(*x - *y);
      case Op::mul: return finite(*x * *y);
      case Op::div:
        if (*y == 0) return std::monostate{};
        return finite(*x / *y);
      case Op::lt: return *x < *y;
      case Op::le: return *x <= *y;
      case Op::gt: return *x > *y;
      case Op::ge: return *x >= *y;
      default: return std::monostate{};
    }
  }

  const Tree& tree_;
  const Inputs& inputs_;
};

std::string show(const Value& v) {
  if (const auto* d = std::get_if<double>(&v)) return fmt::format("{:.6g}", *d);
  if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  return "unknown";
}

// The node's text with runs of white space shown as one space.
std::string source(const Tree& tree, const Node& n) {
  std::string out;
  bool gap = false;
  for (std::size_t i = n.begin; i < n.end && i < tree.text.size(); ++i) {
    if (space(tree.text[i])) {
      gap = true;
      continue;
    }
    if (gap && !out.empty()) out += ' ';
    gap = false;
    out += tree.text[i];
  }
  return out;
}

}  // namespace

std::string describe(const ParseError& error) { return fmt::format("{}: {}", error.position, error.message); }

tl::expected<Expression, ParseError> Expression::parse(std::string_view text) {
  auto tree = Parser(text).run();
  if (!tree) return tl::unexpected(std::move(tree.error()));
  return Expression(std::make_shared<const Tree>(std::move(*tree)));
}

Expression::Expression() {
  static const auto kFalse = [] {
    Tree tree;
    tree.text = "false";
    Node n;
    n.op = Op::boolean;
    n.end = tree.text.size();
    n.kind = ValueKind::boolean;
    tree.nodes.push_back(n);
    return std::make_shared<const Tree>(std::move(tree));
  }();
  tree_ = kFalse;
}

const std::string& Expression::text() const { return tree_->text; }

std::vector<std::string> Expression::metrics() const {
  std::set<std::string> names;
  for (const Node& n : tree_->nodes) {
    if (n.op == Op::metric || n.op == Op::window) names.insert(n.metric);
  }
  return {names.begin(), names.end()};
}

std::chrono::milliseconds Expression::horizon() const {
  milliseconds longest{0};
  for (const Node& n : tree_->nodes) longest = std::max(longest, n.duration);
  return longest;
}

std::vector<std::pair<std::string, std::chrono::milliseconds>> Expression::windows() const {
  std::set<std::pair<std::string, milliseconds>> uses;
  for (const Node& n : tree_->nodes) {
    if (n.op == Op::window) uses.emplace(n.metric, n.duration);
  }
  return {uses.begin(), uses.end()};
}

std::vector<std::chrono::milliseconds> Expression::absences() const {
  std::set<milliseconds> durations;
  for (const Node& n : tree_->nodes) {
    if (n.op == Op::absent) durations.insert(n.duration);
  }
  return {durations.begin(), durations.end()};
}

ValueKind Expression::kind() const { return tree_->nodes[static_cast<std::size_t>(tree_->root)].kind; }

Value Expression::evaluate(const Inputs& inputs) const { return Interpreter(*tree_, inputs).eval(tree_->root); }

std::string Expression::explain(const Inputs& inputs) const {
  constexpr std::size_t kMaxParts = 4;
  const Interpreter interpreter(*tree_, inputs);
  std::vector<int> parts;
  std::vector<int> pending{tree_->root};
  while (!pending.empty() && parts.size() < kMaxParts) {
    const int index = pending.back();
    pending.pop_back();
    const Node& n = tree_->nodes[static_cast<std::size_t>(index)];
    if (n.op == Op::and_ || n.op == Op::or_) {
      pending.push_back(n.right);  // left first, in text order
      pending.push_back(n.left);
    } else if (n.op == Op::not_) {
      pending.push_back(n.left);
    } else {
      parts.push_back(index);
    }
  }
  std::string out;
  for (int index : parts) {
    const Node& n = tree_->nodes[static_cast<std::size_t>(index)];
    if (!out.empty()) out += "; ";
    out += source(*tree_, n);
    out += ": ";
    if (is_comparison(n.op)) {
      out += fmt::format("{} {} {}", show(interpreter.eval(n.left)), op_text(n.op), show(interpreter.eval(n.right)));
    } else {
      out += show(interpreter.eval(index));
    }
  }
  return out;
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text.size() < 2) return std::nullopt;
  return duration_of(text.substr(0, text.size() - 1), text.back());
}

std::string format_duration(std::chrono::milliseconds duration) {
  const auto ms = duration.count();
  if (ms != 0 && ms % 3'600'000 == 0) return fmt::format("{}h", ms / 3'600'000);
  if (ms != 0 && ms % 60'000 == 0) return fmt::format("{}m", ms / 60'000);
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}s", static_cast<double>(ms) / 1000.0);
}

}  // namespace torii::rules
