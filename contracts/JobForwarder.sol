// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice What a forwarder asks the TaskManager that deploys it.
interface IForwarderDeployer {
    /// @notice The target and the target's calldata of the forwarder being deployed (set only
    ///         during its deployment; the zero address and empty bytes otherwise).
    function forwarderCall() external view returns (address target, bytes memory callData);
}

/// @notice What anyone may read from a job's forwarder (JobForwarderRuntime answers these from
///         its fallback: it has no Solidity functions, so that it dispatches on the caller first).
interface IJobForwarder {
    /// @notice The TaskManager that deployed this forwarder and alone may drive it.
    function taskManager() external view returns (address);
    /// @notice The job's target, fixed for the job's life.
    function target() external view returns (address);
}

/// @title JobForwarderRuntime
/// @notice The code every job's forwarder runs, followed by its job's data: the one caller a
///         job's target sees. Each job calls its target through its own forwarder, so
///         `msg.sender == forwarderOf(jobId)` tells a target its own job from anyone else's,
///         and no job ever lends the TaskManager's address to its call.
/// @dev Never deployed on its own: JobForwarder's constructor returns this contract's runtime
///      code followed by `callData ++ taskManager ++ target ++ callData.length` (the last three
///      one word each), so the job's call lives in its forwarder's code and an execution reads
///      no storage for it. Everything is read from the code's tail.
///
///      Calls from the TaskManager always forward, whatever their bytes (it dispatches on the
///      caller first, so no view's selector can shadow a call of the TaskManager's). Their
///      calldata: 32 bytes of gas for the target, then either nothing (the target is called
///      with the embedded callData: Time, Cron and Event jobs) or the target's calldata
///      (Condition jobs: the resolver's payload or `performUpkeep(payload)`). It reverts when
///      the target call fails, passing on at most the first 256 bytes of the target's revert
///      data (its reason, for JobFailed), so the TaskManager sees the target's outcome as its
///      own call's. Any other caller may read `taskManager()` (0xa50a640e) and `target()`
///      (0xd4b83992), and is refused everything else with `NotTaskManager`.
contract JobForwarderRuntime {
    /// @notice Bytes of the code's tail after the callData: taskManager, target, callData length.
    uint256 internal constant TAIL_BYTES = 0x60;

    error NotTaskManager(address caller);

    /// @notice From the TaskManager: calls the target with the given gas and the embedded or
    ///         given calldata. From anyone else: `taskManager()`, `target()`, or NotTaskManager.
    fallback() external {
        assembly {
            // tail: [taskManager][target][callData length], copied to 0x80..0xe0
            let size := codesize()
            codecopy(0x80, sub(size, TAIL_BYTES), TAIL_BYTES)
            let manager := mload(0x80)
            let to := mload(0xa0)
            if eq(caller(), manager) {
                let n := sub(calldatasize(), 0x20)
                switch gt(calldatasize(), 0x20)
                case 0 {
                    n := mload(0xc0)
                    codecopy(0x80, sub(sub(size, TAIL_BYTES), n), n)
                }
                default { calldatacopy(0x80, 0x20, n) }
                // Return data is never copied whole: a target cannot make the executor pay for
                // a huge return or revert.
                if iszero(call(calldataload(0), to, 0, 0x80, n, 0, 0)) {
                    let r := returndatasize()
                    if gt(r, 256) { r := 256 }
                    returndatacopy(0x80, 0, r)
                    revert(0x80, r)
                }
                return(0, 0)
            }
            let selector := shr(224, calldataload(0))
            if eq(calldatasize(), 4) {
                if eq(selector, 0xa50a640e) { return(0x80, 0x20) } // taskManager()
                if eq(selector, 0xd4b83992) { return(0xa0, 0x20) } // target()
            }
            mstore(0x80, shl(224, 0xa4fc8c1c)) // NotTaskManager(address)
            mstore(0x84, caller())
            revert(0x80, 0x24)
        }
    }
}

/// @title JobForwarder
/// @notice Deploys a job's forwarder: the init code the TaskManager runs with CREATE2.
/// @dev Constant init code (JobForwarderRuntime's code is a constant of it), so a forwarder's
///      address depends only on the TaskManager and the salt. The constructor reads its job's
///      target and calldata back from the deployer and returns as the forwarder's code
///      JobForwarderRuntime's, followed by the calldata, the deployer, the target and the
///      calldata's length (see JobForwarderRuntime). Its code deposit grows by 200 gas a byte
///      of calldata, paid once by createJob.
contract JobForwarder {
    constructor() {
        (address target, bytes memory callData) = IForwarderDeployer(msg.sender).forwarderCall();
        bytes memory code = abi.encodePacked(
            type(JobForwarderRuntime).runtimeCode,
            callData,
            uint256(uint160(msg.sender)),
            uint256(uint160(target)),
            callData.length
        );
        assembly ("memory-safe") {
            return(add(code, 0x20), mload(code))
        }
    }
}
