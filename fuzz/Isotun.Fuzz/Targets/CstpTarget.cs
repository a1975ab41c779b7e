using Isotun.Protocol.Cstp;

namespace Isotun.Fuzz.Targets;

/// <summary>
/// A byte stream as a CSTP peer sends it, read frame by frame as the server's reader does, under a tight and the
/// widest payload bound. Each accepted header re-encodes to the same 8 bytes.
/// </summary>
public sealed class CstpTarget : IFuzzTarget
{
    private static readonly int[] MaxPayloads = [1400, CstpFrame.MaxPayloadLength];

    public string Name => "cstp";

    public string Description => "CSTP frame headers (CstpFrame.TryParseHeader) over a stream of frames";

    public void Run(ReadOnlySpan<byte> input)
    {
        Span<byte> again = stackalloc byte[CstpFrame.HeaderLength];
        foreach (int max in MaxPayloads)
        {
            var rest = input;
            while (true)
            {
                var result = CstpFrame.TryParseHeader(rest, max, out var header);
                Invariant.Defined(result);
                Invariant.That((result == CstpParseResult.NeedMore) == (rest.Length < CstpFrame.HeaderLength));
                if (result != CstpParseResult.Ok)
                {
                    Invariant.That(header == default);
                    break;
                }

                Invariant.Defined(header.Type);
                Invariant.That(header.PayloadLength >= 0 && header.PayloadLength <= max);
                CstpFrame.WriteHeader(again, header.Type, header.PayloadLength);
                Invariant.That(again.SequenceEqual(rest[..CstpFrame.HeaderLength]));

                int frame = CstpFrame.HeaderLength + header.PayloadLength;
                if (rest.Length < frame)
                {
                    break; // the reader would wait for the rest of the payload
                }

                rest = rest[frame..];
            }
        }
    }
}
