// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title CallerProbe
/// @notice Records who called it: tests read the address a job's target sees as `msg.sender`.
contract CallerProbe {
    address public lastCaller;
    uint256 public calls;

    function poke() external {
        lastCaller = msg.sender;
        calls++;
    }
}
