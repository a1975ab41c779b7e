using Isotun.Protocol.Tls;

namespace Isotun.Fuzz.Targets;

/// <summary>
/// The first bytes of a TLS connection, as the gateway's SNI router reads them: fed whole, one byte at a time, and in
/// uneven pieces through GetMemory/Advance, to a reader with the default bound and one with a tiny bound. TCP
/// segmentation must not change the outcome or the name, a name is a normalised host name, and every byte fed is kept
/// for replay.
/// </summary>
public sealed class ClientHelloTarget : IFuzzTarget
{
    private static readonly int[] Bounds = [ClientHelloReader.DefaultMaxBytes, 64];

    public string Name => "clienthello";

    public string Description => "TLS ClientHello and SNI (ClientHelloReader), whole, byte by byte and in pieces";

    public void Run(ReadOnlySpan<byte> input)
    {
        foreach (int bound in Bounds)
        {
            var data = input.Length > bound ? input[..bound] : input;

            using var whole = new ClientHelloReader(bound);
            var outcome = whole.Feed(data);
            Check(whole, outcome, data);

            using var bytewise = new ClientHelloReader(bound);
            for (int i = 0; i < data.Length; i++)
            {
                bytewise.Feed(data.Slice(i, 1));
            }

            Check(bytewise, bytewise.Outcome, data);
            Invariant.That(bytewise.Outcome == outcome && bytewise.ServerName == whole.ServerName);

            using var pieces = new ClientHelloReader(bound);
            var rest = data;
            int piece = 1;
            while (!rest.IsEmpty)
            {
                var memory = pieces.GetMemory(piece).Span;
                Invariant.That(memory.Length > 0 && memory.Length <= pieces.Remaining);
                int n = Math.Min(Math.Min(piece, rest.Length), memory.Length);
                rest[..n].CopyTo(memory);
                pieces.Advance(n);
                rest = rest[n..];
                piece = piece * 3 + 1; // 1, 4, 13, 40, ...: cuts inside record headers and bodies alike
            }

            Check(pieces, pieces.Outcome, data);
            Invariant.That(pieces.Outcome == outcome && pieces.ServerName == whole.ServerName);
        }

        var normalized = ClientHelloReader.NormalizeHostName(input);
        if (normalized is not null)
        {
            CheckHostName(normalized);
        }
    }

    private static void Check(ClientHelloReader reader, ClientHelloOutcome outcome, ReadOnlySpan<byte> data)
    {
        Invariant.Defined(outcome);
        Invariant.That(reader.Outcome == outcome);
        Invariant.That(reader.Buffered.Span.SequenceEqual(data));
        Invariant.That(reader.Remaining == reader.MaxBytes - data.Length);
        Invariant.That((outcome == ClientHelloOutcome.ServerName) == (reader.ServerName is not null));
        if (reader.ServerName is not null)
        {
            CheckHostName(reader.ServerName);
        }
    }

    private static void CheckHostName(string name)
    {
        Invariant.That(name.Length is > 0 and <= ClientHelloReader.MaxHostNameLength);
        Invariant.That(!name.StartsWith('.') && !name.EndsWith('.') && !name.Contains(".."));
        foreach (char c in name)
        {
            Invariant.That(c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-' or '_' or '.');
        }
    }
}
