//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package uffd

import "unsafe"

// The userfaultfd ABI of <linux/userfaultfd.h>, defined by hand because
// golang.org/x/sys/unix has the syscall number only. abi_test.go checks every
// size, offset and number below against the kernel header with a C program.
//
// The ioctl numbers use the generic encoding of <asm-generic/ioctl.h>
// (dir<<30 | size<<16 | type<<8 | nr), which is why the build tag lists the
// architectures that use it.

const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, typ, nr, size uintptr) uintptr { return dir<<30 | size<<16 | typ<<8 | nr }

const uffdioType = 0xAA

// uffdAPI is UFFD_API, the API version asked for in UFFDIO_API.
const uffdAPI = 0xAA

// Flags of the userfaultfd system call and of USERFAULTFD_IOC_NEW.
const uffdUserModeOnly = 1

type uffdioAPI struct {
	API      uint64
	Features uint64
	Ioctls   uint64
}

type uffdioRange struct {
	Start uint64
	Len   uint64
}

type uffdioRegister struct {
	Range  uffdioRange
	Mode   uint64
	Ioctls uint64
}

type uffdioCopy struct {
	Dst  uint64
	Src  uint64
	Len  uint64
	Mode uint64
	Copy int64
}

type uffdioZeropage struct {
	Range    uffdioRange
	Mode     uint64
	Zeropage int64
}

type uffdioWriteprotect struct {
	Range uffdioRange
	Mode  uint64
}

type uffdioContinue struct {
	Range  uffdioRange
	Mode   uint64
	Mapped int64
}

// Mode bits of the range ioctls.
const (
	zeropageModeDontWake     = 1 << 0
	writeprotectModeWP       = 1 << 0
	writeprotectModeDontWake = 1 << 1
	continueModeDontWake     = 1 << 0
)

var (
	ioctlUFFDIO_API          = ioc(iocRead|iocWrite, uffdioType, IoctlAPI, unsafe.Sizeof(uffdioAPI{}))
	ioctlUFFDIO_REGISTER     = ioc(iocRead|iocWrite, uffdioType, IoctlRegister, unsafe.Sizeof(uffdioRegister{}))
	ioctlUFFDIO_UNREGISTER   = ioc(iocRead, uffdioType, IoctlUnregister, unsafe.Sizeof(uffdioRange{}))
	ioctlUFFDIO_WAKE         = ioc(iocRead, uffdioType, IoctlWake, unsafe.Sizeof(uffdioRange{}))
	ioctlUFFDIO_COPY         = ioc(iocRead|iocWrite, uffdioType, IoctlCopy, unsafe.Sizeof(uffdioCopy{}))
	ioctlUFFDIO_ZEROPAGE     = ioc(iocRead|iocWrite, uffdioType, IoctlZeroPage, unsafe.Sizeof(uffdioZeropage{}))
	ioctlUFFDIO_WRITEPROTECT = ioc(iocRead|iocWrite, uffdioType, IoctlWriteProtect, unsafe.Sizeof(uffdioWriteprotect{}))
	ioctlUFFDIO_CONTINUE     = ioc(iocRead|iocWrite, uffdioType, IoctlContinue, unsafe.Sizeof(uffdioContinue{}))
	ioctlUSERFAULTFD_IOC_NEW = ioc(iocNone, uffdioType, 0x00, 0)
)
