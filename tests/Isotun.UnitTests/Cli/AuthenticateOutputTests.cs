using Isotun.Cli.Commands;

namespace Isotun.UnitTests.Cli;

/// <summary>`isotun connect --authenticate` prints each value in single quotes, for `eval` in a POSIX shell, as openconnect does.</summary>
public sealed class AuthenticateOutputTests
{
    [Theory]
    [InlineData("dGhlLXNlYWxlZA", "'dGhlLXNlYWxlZA'")]
    [InlineData("a$(b)`c`", "'a$(b)`c`'")]
    [InlineData("it's", "'it'\\''s'")]
    public void A_value_is_quoted_for_a_shell(string value, string printed) => Assert.Equal(printed, ConnectCommand.ShellQuoted(value));
}
