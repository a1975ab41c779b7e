# Reads `perf script -F comm,tid,ip,sym,dso` of a .NET process recorded with frame-pointer call chains (perf record -g)
# and with the runtime's perf map on (DOTNET_PerfMapEnabled=3, DOTNET_EnableWriteXorExecute=0, so that JIT code is
# named). Prints "tls total share": the samples that are TLS record work, all samples, and their ratio.
#
# A sample is TLS record work when the code it was taken in (for a sample in the kernel, the user code an interrupt
# came in on; a system call is not record work: under SslStream, those are the socket calls)
#   - is OpenSSL (libcrypto, libssl, or .NET's shim into it): OpenSSL has no frame pointers, so its chains cannot be
#     followed, but in a running tunnel all of OpenSSL's work is records; likewise the C library's memcpy, memset,
#     strcmp or malloc when its caller cannot be followed (the code here without frame pointers is OpenSSL); or
#   - walking outwards past the runtime's and the C library's frames, is first owned by System.Net.Security
#     (SslStream's framing and buffers: the handshake, and TLS 1.2 tunnels) or is Isotun's own record layer on
#     OpenSSL's connection (Isotun.Transport.TlsRecordStream: TLS 1.3 tunnels).
# Interrupts are counted as the server's own measure counts them: without IRQ time accounting (CONFIG_IRQ_TIME_ACCOUNTING
# off, as on Debian's and most cloud kernels) the kernel charges an interrupt's work to the thread it came in on.
function owner(line,   a, n, p) {
  # JIT code named by the perf map: "... [Assembly] Namespace.Type::Method(...)"
  if (match(line, /\[[A-Za-z][A-Za-z0-9.]*\] [^(]/) && substr(line, RSTART, 9) != "[unknown]") return substr(line, RSTART + 1, RLENGTH - 4)
  # Else the file the code is in: "(/path/to/file)"
  if (match(line, /\([^()]*\)$/)) { a = substr(line, RSTART + 1, RLENGTH - 2); n = split(a, p, "/"); return p[n] }
  return ""
}
function openssl(o) { return o ~ /^libcrypto\.so|^libssl\.so|^libSystem\.Security\.Cryptography\.Native\.OpenSsl\.so/ }
function neutral(o) { return o == "" || o ~ /^System\.Private\.CoreLib|^System\.Runtime|^libc\.so|^libcoreclr\.so|^libclrjit\.so|^ld-linux|^libSystem\.Native\.so|^perf-[0-9]+\.map$/ }
function flush() {
  if (insample) {
    # A C library leaf whose caller could not be followed.
    if (verdict == "" && user == 1 && libcleaf) verdict = "tls"
    total++
    if (verdict == "tls") tls++
  }
  insample = 0
}
/^[^\t ]/ { flush(); insample = 1; user = 0; verdict = ""; kernel = ""; libcleaf = 0; next }
/^$/ { flush(); next }
{
  if (!insample || verdict != "") next
  o = owner($0)
  if (o ~ /kernel/) {
    # The outermost entry decides: an interrupt during a system call is part of that call.
    if ($2 ~ /^entry_SYSCALL/) kernel = "syscall"
    else if ($2 ~ /^asm_(sysvec|common_interrupt|exc_)/) kernel = "interrupt"
    else if (kernel == "") kernel = "other"
    next
  }
  if (kernel != "" && kernel != "interrupt") { verdict = "no"; next }
  user++
  if (user == 1 && openssl(o)) { verdict = "tls"; next }
  if (user == 1) libcleaf = o ~ /^libc\.so/
  if (user == 2 && libcleaf && (o == "" || o == "[unknown]")) { verdict = "tls"; next }
  if (neutral(o)) next
  verdict = o ~ /^System\.Net\.Security/ || $0 ~ /Isotun\.Transport\.TlsRecordStream[:+]/ ? "tls" : "no"
}
END { flush(); printf "%d %d %.4f\n", tls, total, total ? tls / total : 0 }
